// A list's filter form (method get) sends only the fields set: `?state=paused`, not
// `?state=paused&script_id=&user_id=` (an address to read, keep or share).
export function sendOnlySet(form) {
  form?.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams([...new FormData(form)].filter(([, value]) => value !== ""));
    // The form's action is this page's own address, with the filters it was opened with.
    const target = new URL(form.action);
    target.search = query.toString();
    location.assign(target.href);
  });
}
