// Runs in words, by the server's one definition (app/web/wording.py): each page carries its
// table in <meta name="run-wording"> (wording.for_the_browser), read when first asked for.
let table = null;
export function rules() {
  table ??= JSON.parse(document.querySelector('meta[name="run-wording"]').content);
  return table;
}

// A run's status as its badge says it, and the badge's tone ("ok", "bad", "warn" or "").
export const statusWords = (status) => rules().status_words[status] ?? status;
export const statusTone = (status) => rules().status_tones[status] ?? "";
// What started a run, as the lists mark it after its status ("" for a page or the API).
export const triggerMark = (trigger) => rules().trigger_marks[trigger] ?? trigger;
// An integration call's error and account in words, as the run page says them
// (wording.call_error_in_words, account_in_words with "own": the call log names whose).
export const callErrorWords = (code) => rules().call_error_words[code] ?? code.replaceAll("_", " ");
export function accountWords(kind) {
  if (!kind) return "";
  const words = rules().account_words;
  if (kind.startsWith("label:")) return words.label.replace("{label}", () => kind.slice("label:".length));
  return words[kind] ?? kind;
}

// Whether an error's message already says its code in words ("cancelled": "the run was
// cancelled"): shown with its code it would say it twice. It reads the message, so it is
// code, not data: the same rule as wording.restates_code (tests/static/test_wording_js.py
// holds the two to the same answers).
export function restatesCode(code, message) {
  if (!code || !message) return false;
  return String(message).toLowerCase().includes(code.replaceAll("_", " ").toLowerCase());
}
