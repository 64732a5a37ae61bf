// The only script: copies the customer's code. Everything else works without it.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  var input = document.getElementById(button.getAttribute("data-copy"));
  if (!input) return;
  var section = button.closest("section");
  var status = section ? section.querySelector("[data-copy-status]") : null;
  function done(text) { if (status) status.textContent = text; }
  function fallback() {
    input.focus();
    input.select();
    try { document.execCommand("copy") ? done("Copied.") : done("Select the code and copy it."); }
    catch (e) { done("Select the code and copy it."); }
  }
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(input.value).then(function () { done("Copied."); }, fallback);
  } else {
    fallback();
  }
});
