// Scriptbox script editor: CodeMirror 6 with Python, the Scriptbox script API
// completions and run/save shortcuts. Built into ../vendor/editor.js by build.mjs.
//
//   import { createEditor } from "/static/vendor/editor.js";
//   const ed = createEditor(document.querySelector("#editor"), {
//     doc: "print('hi')",
//     onChange: (text) => {},          // user edits only, not setValue()
//     onRun: (text) => {},             // Ctrl/Cmd-Enter
//     onSave: (text) => {},            // Ctrl/Cmd-S
//     integrations: [{ key: "github", name: "GitHub" }],
//   });
//   ed.getValue(); ed.setValue(text); ed.markError(3, "NameError: x");
//   ed.clearErrors(); ed.setIntegrations(list); ed.focus(); ed.destroy(); ed.view
//   Option `nonce`: the page's CSP nonce for CodeMirror's <style> element (the server's
//   CSP allows no inline style without it). Option `label`: the text area's accessible name
//   (a screen reader says it on entering the editor), "Script source" unless given.

import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { Annotation, Compartment, EditorState, Prec } from "@codemirror/state";
import {
  HighlightStyle,
  indentUnit,
  syntaxHighlighting,
  syntaxTree,
  LanguageSupport,
} from "@codemirror/language";
import { indentWithTab } from "@codemirror/commands";
import { completeFromList, ifNotIn } from "@codemirror/autocomplete";
import { forEachDiagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import {
  globalCompletion,
  localCompletionSource,
  pythonLanguage,
} from "@codemirror/lang-python";
import { tags as t } from "@lezer/highlight";

// ---------------------------------------------------------------------------
// The script API (DESIGN.md §2)

const ERROR_INFO = {
  IntegrationError: "Base class of every integration error; has .code",
  NoIntegrationGrant:
    "code no_integration_grant: no usable account and the grant was refused, expired or nobody could be asked; .reason says which",
  UnknownIntegration: "code unknown_integration: the facility has no integration with that key",
  ForbiddenDestination:
    "code forbidden_destination: URL leaves the integration's hosts, targets a private address, or sets the credential header",
  IntegrationTimeout: "code integration_timeout: the service did not answer in time",
  IntegrationUnavailable:
    "code integration_unavailable: connection refused, DNS failure or TLS failure",
  RateLimited:
    "code rate_limited: 429 whose Retry-After does not fit in the remaining time (.retry_after)",
  HTTPError: "code http_error: raised only by resp.raise_for_status()",
};

const VERB_KW = "params=, json=, data=, headers=, timeout=, account=";

const INTEGRATION_MEMBERS = [
  {
    label: "request",
    type: "function",
    boost: 3,
    detail: "(service, method, path, …)",
    info:
      `request(service, method, path, ${VERB_KW}) → Response. ` +
      "path is relative to the integration's base URL; non-2xx responses are returned, not raised.",
  },
  ...["get", "post", "put", "patch", "delete"].map((verb) => ({
    label: verb,
    type: "function",
    boost: 2,
    detail: "(service, path, …)",
    info: `${verb}(service, path, ${VERB_KW}) → Response. Same as request(service, "${verb.toUpperCase()}", path, …).`,
  })),
  {
    label: "require",
    type: "function",
    boost: 1,
    detail: "(service)",
    info: "require(service): make sure a grant for the service exists now (may prompt the user).",
  },
  {
    label: "available",
    type: "function",
    boost: 1,
    detail: "()",
    info: 'available() → [{"key", "name", "master": bool, "user_accounts": [...]}]',
  },
  ...Object.entries(ERROR_INFO).map(([label, info]) => ({
    label,
    type: "class",
    detail: label === "IntegrationError" ? "exception" : "IntegrationError",
    info,
  })),
];

// `store.<partial>`: the script's store, small JSON values kept between its runs.
const STORE_MEMBERS = [
  {
    label: "get",
    type: "function",
    boost: 2,
    detail: "(key, default=None)",
    info: "get(key, default=None) → the value kept under key by this script's runs, or default.",
  },
  {
    label: "set",
    type: "function",
    boost: 2,
    detail: "(key, value)",
    info: "set(key, value): keep a JSON value (at most 64 KiB) for this script's next runs; written at once. At most 100 keys, each 1-200 characters.",
  },
  { label: "delete", type: "function", detail: "(key)", info: "delete(key) → whether the store held key." },
  { label: "keys", type: "function", detail: "()", info: "keys() → the keys kept, sorted." },
];

const SCRIPT_GLOBALS = [
  {
    label: "integrations",
    type: "namespace",
    detail: "script API",
    info: "Call third-party APIs: integrations.request/get/post/put/patch/delete, require, available.",
  },
  {
    label: "store",
    type: "namespace",
    detail: "kept between runs",
    info: "This script's store: store.get(key, default), store.set(key, value), store.delete(key), store.keys(). JSON values kept between its runs.",
  },
  { label: "input", type: "variable", detail: "run input", info: "The run's JSON input." },
  { label: "user", type: "variable", detail: "id, name", info: "The user running the script (id, name)." },
  { label: "facility", type: "variable", detail: "id, name", info: "The facility the script runs in (id, name)." },
  {
    label: "result",
    type: "variable",
    detail: "run result",
    info: "Set a top-level variable result; its JSON value is the run's result.",
  },
  { label: "print", type: "function", detail: "(*values)", info: "Write to the run's output." },
];
const SCRIPT_GLOBAL_NAMES = new Set(SCRIPT_GLOBALS.map((c) => c.label));

const NO_CODE = ["String", "FormatString", "Comment", "PropertyName"];

function inComment(context) {
  const node = syntaxTree(context.state).resolveInner(context.pos, -1);
  for (let n = node; n; n = n.parent) if (n.name === "Comment") return true;
  return false;
}

// `integrations.<partial>` → the API members.
function integrationMemberSource(context) {
  const m = context.matchBefore(/\bintegrations\s*\.\s*\w*$/);
  if (!m || inComment(context)) return null;
  const word = /\w*$/.exec(m.text)[0];
  return {
    from: context.pos - word.length,
    options: INTEGRATION_MEMBERS,
    validFor: /^\w*$/,
  };
}

// `store.<partial>` → the store's members.
function storeMemberSource(context) {
  const m = context.matchBefore(/\bstore\s*\.\s*\w*$/);
  if (!m || inComment(context)) return null;
  const word = /\w*$/.exec(m.text)[0];
  return { from: context.pos - word.length, options: STORE_MEMBERS, validFor: /^\w*$/ };
}

// First string argument of integrations.request(/get(/…/require( → service keys.
const SERVICE_ARG = /\bintegrations\s*\.\s*(?:request|get|post|put|patch|delete|require)\s*\(\s*[rRbBuU]?(["'])([\w.-]*)$/;

function serviceKeySource(getServices) {
  return (context) => {
    const m = context.matchBefore(SERVICE_ARG);
    if (!m || inComment(context)) return null;
    const partial = SERVICE_ARG.exec(m.text)[2];
    const services = getServices();
    if (!services.length) return null;
    return {
      from: context.pos - partial.length,
      options: services.map((s) => ({
        label: String(s.key),
        type: "constant",
        detail: s.name ? String(s.name) : undefined,
        boost: 1,
      })),
      validFor: /^[\w.-]*$/,
    };
  };
}

// What a call returns: `resp = integrations.get(...)`, then `resp.` → the response's members.
const RESPONSE_MEMBERS = [
  { label: "status", type: "property", detail: "int", info: "The HTTP status code, e.g. 200." },
  { label: "ok", type: "property", detail: "bool", info: "True for a 2xx status." },
  { label: "headers", type: "property", detail: "dict", info: "Response headers (case-insensitive keys)." },
  { label: "text", type: "property", detail: "str", info: "The body as text." },
  { label: "url", type: "property", detail: "str", info: "The URL that answered (credentials removed)." },
  { label: "json", type: "method", detail: "()", apply: "json()", info: "The body parsed as JSON." },
  { label: "raise_for_status", type: "method", detail: "()", apply: "raise_for_status()", info: "Raise integrations.HTTPError unless the status is 2xx." },
];
const CALL_ASSIGN = /^\s*([A-Za-z_]\w*)\s*=\s*integrations\s*\.\s*(?:request|get|post|put|patch|delete)\s*\(/gm;

function responseMemberSource(context) {
  const m = context.matchBefore(/\b([A-Za-z_]\w*)\s*\.\s*\w*$/);
  if (!m || inComment(context)) return null;
  const name = /^([A-Za-z_]\w*)/.exec(m.text)[1];
  const source = context.state.doc.toString();
  const responses = new Set([...source.matchAll(CALL_ASSIGN)].map((a) => a[1]));
  if (!responses.has(name)) return null;
  const word = /\w*$/.exec(m.text)[0];
  return { from: context.pos - word.length, options: RESPONSE_MEMBERS, validFor: /^\w*$/ };
}

// `account="` inside an integrations call → "user", "master" and the user's own labels.
const ACCOUNT_ARG = /\baccount\s*=\s*(["'])([\w.-]*)$/;

function accountLabelSource(getLabels) {
  return (context) => {
    const m = context.matchBefore(ACCOUNT_ARG);
    if (!m || inComment(context)) return null;
    const partial = ACCOUNT_ARG.exec(m.text)[2];
    const options = [
      { label: "user", type: "constant", detail: "your own account" },
      { label: "master", type: "constant", detail: "the facility's master account" },
      ...getLabels().map((l) => ({ label: String(l.label), type: "constant", detail: l.integration ? `your ${l.integration} account` : "your account", boost: 1 })),
    ];
    return { from: context.pos - partial.length, options, validFor: /^[\w.-]*$/ };
  };
}

const scriptGlobalSource = ifNotIn(NO_CODE, completeFromList(SCRIPT_GLOBALS));

// The builtins a script has: the sandbox's allowlist (sandbox/script_globals.py, less the
// names it refuses in words and those starting with "_"; tests/e2e/test_editor_completions.py
// checks the two agree). lang-python offers all of Python's, and open, eval or __import__
// would only end the run `forbidden`.
const SCRIPT_BUILTINS = new Set(`
  ArithmeticError AssertionError AttributeError Ellipsis Exception False Forbidden IndexError
  KeyError LookupError MemoryError NameError None NotImplemented NotImplementedError
  OverflowError RecursionError RuntimeError StopIteration TimeoutError True TypeError
  UnicodeDecodeError UnicodeEncodeError UnicodeError ValueError ZeroDivisionError abs all any
  ascii bin bool bytearray bytes callable chr complex dict divmod enumerate filter float format
  frozenset getattr hasattr hash hex int isinstance issubclass iter len list map max min next
  object oct ord pow range repr reversed round set setattr slice sorted str sum tuple type zip
`.trim().split(/\s+/));

// After a dot come an object's members (integrations., resp.), never globals or locals.
const notAfterDot = (source) => (context) => (context.matchBefore(/\.\s*\w*$/) ? null : source(context));

// lang-python's globals less what scripts do not have, and less print/input, which
// SCRIPT_GLOBALS describes (each name appears once, with the Scriptbox description); its
// snippets (def, for, try, ...) stay.
function scriptPythonGlobals(context) {
  const res = globalCompletion(context);
  if (!res) return res;
  const offered = (o) => o.type === "keyword" || (SCRIPT_BUILTINS.has(o.label) && !SCRIPT_GLOBAL_NAMES.has(o.label));
  return { ...res, options: res.options.filter(offered) };
}

// ---------------------------------------------------------------------------
// Look

const highlight = HighlightStyle.define([
  { tag: t.keyword, color: "#8839ef", fontWeight: "500" },
  { tag: [t.controlKeyword, t.moduleKeyword, t.definitionKeyword], color: "#8839ef", fontWeight: "500" },
  { tag: [t.bool, t.null, t.atom], color: "#b35900" },
  { tag: [t.number], color: "#b35900" },
  { tag: [t.string, t.special(t.string)], color: "#2e7d32" },
  { tag: [t.escape, t.regexp], color: "#00838f" },
  // Comments are text to read: #5f6672 is 5.8:1 on white, 5.4:1 on the active line (AA 4.5:1).
  { tag: t.comment, color: "#5f6672", fontStyle: "italic" },
  { tag: [t.function(t.definition(t.variableName)), t.function(t.variableName)], color: "#1565c0" },
  { tag: t.definition(t.className), color: "#a15c00", fontWeight: "600" },
  { tag: t.className, color: "#a15c00" },
  { tag: [t.propertyName, t.function(t.propertyName)], color: "#0b5cad" },
  { tag: t.self, color: "#c2185b" },
  { tag: [t.operator, t.operatorKeyword], color: "#5c6370" },
  { tag: [t.punctuation, t.bracket], color: "#4b5263" },
  { tag: t.meta, color: "#5f6672" },
  { tag: t.invalid, color: "#d32f2f" },
]);

const theme = EditorView.theme(
  {
    "&": {
      fontSize: "14px",
      color: "#1f2328",
      backgroundColor: "#ffffff",
      border: "1px solid #d0d7de",
      borderRadius: "6px",
    },
    // The page's focus ring colour (app.css --focus): #80b3ff was 2.1:1 on white, under 3:1.
    "&.cm-focused": { outline: "2px solid #3557d6", outlineOffset: "-1px" },
    ".cm-scroller": {
      fontFamily:
        'ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace',
      lineHeight: "1.5",
    },
    ".cm-content, .cm-gutter": { minHeight: "320px" },
    ".cm-content": { caretColor: "#1f2328", padding: "6px 0" },
    ".cm-gutters": {
      backgroundColor: "#f6f8fa",
      color: "#8c959f",
      borderRight: "1px solid #d8dee4",
      borderRadius: "6px 0 0 6px",
    },
    ".cm-activeLine": { backgroundColor: "#f3f7fc" },
    ".cm-activeLineGutter": { backgroundColor: "#eaeef2", color: "#1f2328" },
    "&.cm-focused .cm-matchingBracket": { backgroundColor: "#d6ecd2", outline: "1px solid #9fcf97" },
    "&.cm-focused .cm-nonmatchingBracket": { backgroundColor: "#fbd9d9" },
    ".cm-selectionMatch": { backgroundColor: "#fff3b0" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection":
      { backgroundColor: "#cfe3ff" },
    ".cm-tooltip": {
      border: "1px solid #d0d7de",
      backgroundColor: "#ffffff",
      borderRadius: "6px",
      boxShadow: "0 4px 12px rgba(31, 35, 40, 0.12)",
    },
    ".cm-tooltip-autocomplete > ul > li[aria-selected]": {
      backgroundColor: "#0969da",
      color: "#ffffff",
    },
    ".cm-tooltip-autocomplete > ul > li[aria-selected] .cm-completionDetail": { color: "#dbe9ff" },
    ".cm-completionDetail": { color: "#6e7781", fontStyle: "normal", marginLeft: "0.8em" },
    ".cm-completionInfo, .cm-tooltip-lint": {
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
      fontSize: "13px",
      lineHeight: "1.4",
    },
    ".cm-completionInfo": { padding: "4px 8px" },
    ".cm-diagnostic-error": { borderLeft: "4px solid #d1242f" },
    ".cm-lintRange-error": {
      backgroundColor: "rgba(209, 36, 47, 0.07)",
    },
  },
  { dark: false },
);

// ---------------------------------------------------------------------------
// Typing over a selection

// Chrome, when a typed character replaces a selection that starts in a highlighted token (a
// keyword, a string, a line marked with a run's error), carries that token's look over to the
// new text as a style="…" attribute. The page's CSP refuses inline styles, so each such key
// logged a CSP violation (CodeMirror redraws the line, so nothing looked wrong). Here
// CodeMirror makes that replacement itself, as it would from the DOM change, and the browser
// does no editing that could want an inline style. Composition (IME) input is left alone.
const typeOverSelection = EditorView.domEventHandlers({
  beforeinput(event, view) {
    const { state } = view;
    if (event.inputType !== "insertText" || !event.data || event.isComposing || view.composing) return false;
    if (state.readOnly || state.selection.ranges.every((range) => range.empty)) return false;
    event.preventDefault();
    const text = event.data;
    const { from, to } = state.selection.main;
    const insert = () => state.update(state.replaceSelection(text), { scrollIntoView: true, userEvent: "input.type" });
    // Input handlers (closing brackets: "(" wraps the selection) first, as for any typing.
    if (!state.facet(EditorView.inputHandler).some((handler) => handler(view, from, to, text, insert))) {
      view.dispatch(insert());
    }
    return true;
  },
});

// ---------------------------------------------------------------------------

const programmatic = Annotation.define();

/**
 * Create a Python editor inside `parent`.
 * @param {HTMLElement} parent
 * @param {{doc?: string, onChange?: (text: string) => void, onRun?: (text: string) => void,
 *          onSave?: (text: string) => void, integrations?: {key: string, name?: string}[],
 *          accountLabels?: {label: string, integration?: string}[], label?: string}} options
 */
export function createEditor(parent, options = {}) {
  const { doc = "", onChange, onRun, onSave, nonce = "", label = "Script source" } = options;
  let services = normalizeServices(options.integrations);
  const labels = Array.isArray(options.accountLabels) ? options.accountLabels : [];

  const shortcuts = Prec.highest(
    keymap.of([
      {
        key: "Mod-Enter",
        preventDefault: true,
        run: (view) => {
          if (typeof onRun !== "function") return false;
          onRun(view.state.doc.toString());
          return true;
        },
      },
      {
        key: "Mod-s",
        preventDefault: true,
        run: (view) => {
          if (typeof onSave !== "function") return false;
          onSave(view.state.doc.toString());
          return true;
        },
      },
    ]),
  );

  const python = new LanguageSupport(pythonLanguage, [
    pythonLanguage.data.of({ autocomplete: integrationMemberSource }),
    pythonLanguage.data.of({ autocomplete: storeMemberSource }),
    pythonLanguage.data.of({ autocomplete: serviceKeySource(() => services) }),
    pythonLanguage.data.of({ autocomplete: accountLabelSource(() => labels) }),
    pythonLanguage.data.of({ autocomplete: responseMemberSource }),
    pythonLanguage.data.of({ autocomplete: notAfterDot(scriptGlobalSource) }),
    pythonLanguage.data.of({ autocomplete: notAfterDot(localCompletionSource) }),
    pythonLanguage.data.of({ autocomplete: notAfterDot(scriptPythonGlobals) }),
  ]);

  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        shortcuts,
        basicSetup,
        keymap.of([indentWithTab]),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        python,
        syntaxHighlighting(highlight),
        lintGutter(),
        theme,
        EditorView.cspNonce.of(nonce),
        // The editable area is a role=textbox with no name of its own otherwise.
        EditorView.contentAttributes.of({ "aria-label": label }),
        typeOverSelection,
        EditorView.updateListener.of((update) => {
          if (typeof onChange !== "function" || !update.docChanged) return;
          if (update.transactions.some((tr) => tr.annotation(programmatic))) return;
          onChange(update.state.doc.toString());
        }),
      ],
    }),
  });

  function currentDiagnostics() {
    const out = [];
    forEachDiagnostic(view.state, (d, from, to) => out.push({ ...d, from, to }));
    return out;
  }

  return {
    view,
    getValue() {
      return view.state.doc.toString();
    },
    setValue(text) {
      const value = text == null ? "" : String(text);
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: value },
        selection: { anchor: 0 },
        annotations: programmatic.of(true),
      });
      view.dispatch(setDiagnostics(view.state, []));
    },
    /** Show an error diagnostic on 1-based `line` (clamped to the document). */
    markError(line, message) {
      const docText = view.state.doc;
      const n = Math.min(Math.max(1, Math.floor(Number(line)) || 1), docText.lines);
      const l = docText.line(n);
      const indent = /^\s*/.exec(l.text)[0].length;
      const from = indent < l.length ? l.from + indent : l.from;
      const diagnostic = {
        from,
        to: l.to,
        severity: "error",
        message: String(message ?? "Error"),
        source: "scriptbox",
      };
      view.dispatch(setDiagnostics(view.state, [...currentDiagnostics(), diagnostic]));
    },
    clearErrors() {
      view.dispatch(setDiagnostics(view.state, []));
    },
    /** Replace the service keys offered inside integrations.request("…"). */
    setIntegrations(list) {
      services = normalizeServices(list);
    },
    focus() {
      view.focus();
    },
    destroy() {
      view.destroy();
    },
  };
}

function normalizeServices(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((s) => s && s.key != null && String(s.key) !== "")
    .map((s) => ({ key: String(s.key), name: s.name == null ? "" : String(s.name) }));
}
