// Invitations addressed to the user: accept (go to the facility) or decline.
import { api, toast } from "./api.js";

for (const item of document.querySelectorAll(".invitation")) {
  const base = `/api/invitations/${item.dataset.invitationId}`;
  item.querySelector(".accept-invitation").addEventListener("click", async () => {
    try {
      const joined = await api("POST", `${base}/accept`);
      location.assign(`/f/${joined.facility.slug}/scripts`);
    } catch (error) { toast(error.message, "error"); }
  });
  item.querySelector(".decline-invitation").addEventListener("click", async () => {
    try { await api("POST", `${base}/decline`); location.reload(); }
    catch (error) { toast(error.message, "error"); }
  });
}
