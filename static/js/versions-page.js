// Script versions: restore one into the editor's draft, or publish it for members.
import { api, slug, toast } from "./api.js";
import { localTimes } from "./elapsed.js";

const scriptId = document.getElementById("versions-page").dataset.scriptId;

document.getElementById("restore-version")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    await api("POST", `/api/f/${slug}/scripts/${scriptId}/versions/${event.target.dataset.number}/restore`);
    location.assign(`/f/${slug}/editor/${scriptId}`);
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

document.getElementById("publish-version")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    await api("POST", `/api/f/${slug}/scripts/${scriptId}/versions/${event.target.dataset.number}/publish`);
    location.reload();
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});
localTimes();
