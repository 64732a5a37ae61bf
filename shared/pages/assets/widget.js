// The embeddable widget: the logged-in customer's balance and code on any
// page of the shop. The theme includes this script; it reads widget.json
// beside it (through the app proxy, with the shopper's own session) or the
// signed URL in data-cashback-src (WooCommerce), and fills every element
// marked data-cashback-widget (or one put where the script is). Every text
// is set as text, never as markup. A refused or failed request shows nothing.
(function () {
  var script = document.currentScript || document.querySelector("script[src*='widget.js']");
  if (!script) return;
  var source = script.getAttribute("data-cashback-src") ||
    script.src.replace(/\/assets\/widget\.js(\?.*)?$/, "/widget.json");
  var counter = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) if (Object.prototype.hasOwnProperty.call(attrs, name)) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  function copy(input, status) {
    function done(text) { status.textContent = text; }
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
  }

  function render(host, view) {
    counter += 1;
    var box = el("aside", { "class": "cb-widget", "aria-label": "Your " + view.display_name });
    box.style.border = "1px solid #c9ced6";
    box.style.borderRadius = "8px";
    box.style.padding = "0.75rem 1rem";
    box.style.maxWidth = "28rem";
    var head = el("p", { "class": "cb-widget-balance" });
    head.appendChild(el("strong", {}, view.display_name + ": "));
    if (view.enrolled) {
      head.appendChild(el("span", { "data-cb-balance": "" }, view.balance));
      head.appendChild(document.createTextNode(" to spend"));
    } else {
      head.appendChild(document.createTextNode("earned with your first order."));
    }
    box.appendChild(head);
    if (view.code) {
      var id = "cb-widget-code-" + counter;
      var row = el("p", { "class": "cb-widget-code" });
      row.appendChild(el("label", { "for": id }, "Your code "));
      var input = el("input", { id: id, type: "text", readonly: "", value: view.code, size: String(view.code.length + 1) });
      row.appendChild(input);
      var status = el("span", { role: "status", "aria-live": "polite", "data-cb-copy-status": "" });
      var button = el("button", { type: "button", "data-cb-copy": "" }, "Copy");
      button.addEventListener("click", function () { copy(input, status); });
      row.appendChild(document.createTextNode(" "));
      row.appendChild(button);
      if (view.apply_url) {
        row.appendChild(document.createTextNode(" "));
        row.appendChild(el("a", { href: view.apply_url, "data-cb-apply": "" }, "Apply at checkout"));
      }
      row.appendChild(document.createTextNode(" "));
      row.appendChild(status);
      box.appendChild(row);
    }
    var more = el("p", {});
    more.appendChild(el("a", { href: view.page_url, "data-cb-page": "" }, "See your " + view.display_name));
    box.appendChild(more);
    host.textContent = "";
    host.appendChild(box);
  }

  function start() {
    var hosts = document.querySelectorAll("[data-cashback-widget]");
    if (!hosts.length) {
      var host = el("div", { "data-cashback-widget": "" });
      script.parentNode.insertBefore(host, script);
      hosts = [host];
    }
    if (!window.fetch) return;
    fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (view) {
        if (!view || typeof view.display_name !== "string") return;
        for (var i = 0; i < hosts.length; i++) render(hosts[i], view);
      })
      .catch(function () { /* nothing to show */ });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
