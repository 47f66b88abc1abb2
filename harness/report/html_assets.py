"""The HTML report's inline stylesheet and error trap (html_gallery_script.py holds the gallery's
script): nothing external, no network — the page works offline from a file:// address.

`ERROR_TRAP` runs first, in <head>: it counts uncaught errors, rejected promises and
console.error calls into the #status element (data-errors, data-last-error), which the browser
test reads from the dumped DOM.
"""

STYLE = r"""
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 24px 40px; color: #1d1d1f; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 14px; } .note { color: #555; font-size: 12.5px; margin: 4px 0; }
code { font-size: 12px; background: #f2f2f4; padding: 0 3px; border-radius: 3px; }
table.t { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
table.t th, table.t td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; vertical-align: top; }
table.t th:first-child, table.t td:first-child { text-align: left; }
table.t th { background: #f5f5f7; }
.scroll { overflow-x: auto; }
.ci, .paper { display: block; color: #666; font-size: 11px; }
.same { color: #8a6d00; } .mixed { color: #a33; }
.verdict { font-weight: 600; padding: 0 4px; border-radius: 3px; }
.v-holds, .v-pass, .v-ok { background: #dff3e3; } .v-fails, .v-fail { background: #f8dcdc; }
.v-other { background: #f1ecd6; }
img.plot { max-width: 100%; border: 1px solid #eee; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 8px 10px;
  background: #f5f5f7; border-radius: 6px; position: sticky; top: 0; z-index: 2; }
.controls label { font-size: 12.5px; } .controls select, .controls input { font-size: 12.5px; }
#c-count { font-weight: 600; }
.grid { display: grid; grid-template-columns: var(--first) repeat(var(--methods), var(--col));
  gap: 4px 10px; align-items: start; }
#gallery-head { font-size: 11.5px; font-weight: 600; padding: 6px 0 2px; border-bottom: 1px solid #ccc; }
#gallery-head div { overflow-wrap: anywhere; }
.item { padding: 6px 0; border-bottom: 1px solid #eee; }
[hidden] { display: none !important; }
.item-head { font-size: 12.5px; margin-bottom: 3px; }
.item-head .text { font-weight: 600; } .item-head .meta { color: #666; font-size: 11.5px; }
.item-head .delta { color: #0b5cad; font-size: 11.5px; }
canvas { width: var(--thumb); image-rendering: pixelated; display: block; }
.pair { display: flex; gap: 3px; }
.iou { font-size: 11.5px; margin-top: 2px; padding: 0 3px; border-radius: 3px; width: fit-content; }
.missing { width: calc(2 * var(--thumb) + 3px); font-size: 11px; color: #777; border: 1px dashed #bbb;
  padding: 3px; box-sizing: border-box; }
#status { color: #888; font-size: 11px; margin-top: 20px; }
"""

ERROR_TRAP = r"""
window.__errors = [];
function __reportError(message) {
  window.__errors.push(String(message));
  var status = document.getElementById("status");
  if (status) {
    status.setAttribute("data-errors", String(window.__errors.length));
    status.setAttribute("data-last-error", String(message));
    status.textContent = "script errors: " + window.__errors.length + " (last: " + message + ")";
  }
}
window.addEventListener("error", function (event) { __reportError(event.message); });
window.addEventListener("unhandledrejection", function (event) { __reportError(event.reason); });
(function () {
  var original = console.error;
  console.error = function () {
    __reportError(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
"""
