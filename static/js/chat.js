// Relay Workbench: the small amount of behaviour htmx does not give us.
(function () {
  "use strict";

  // Upsert: an out-of-band swap marked data-upsert replaces children whose id
  // already exists and appends (or prepends) the rest. Frames can therefore be
  // sent twice (reconnects, second tabs) without duplicating anything.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail.fragment;
    if (!fragment || !fragment.hasAttribute || !fragment.hasAttribute("data-upsert")) return;
    Array.prototype.slice.call(fragment.children).forEach(function (child) {
      if (!child.id) return;
      var existing = document.getElementById(child.id);
      if (existing) {
        existing.replaceWith(child);
      }
    });
  });

  function messageList() { return document.getElementById("message-list"); }

  function nearBottom() {
    var el = document.scrollingElement || document.documentElement;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 160;
  }

  var stickToBottom = true;
  window.addEventListener("scroll", function () { stickToBottom = nearBottom(); }, { passive: true });

  function afterContentChange() {
    var list = messageList();
    if (list) {
      var empty = document.getElementById("empty-conversation");
      if (empty) empty.hidden = list.children.length > 0;
      list.querySelectorAll("details.reasoning[hidden]").forEach(function (d) {
        if (d.querySelector(".md-block")) d.hidden = false;
      });
    }
    if (stickToBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  document.addEventListener("htmx:oobAfterSwap", afterContentChange);
  document.addEventListener("htmx:wsAfterMessage", afterContentChange);

  // Connection state, so a dropped socket is visible rather than silent.
  document.addEventListener("htmx:wsOpen", function () {
    var status = document.getElementById("connection-status");
    if (status) { status.textContent = ""; status.classList.remove("visible"); }
  });
  document.addEventListener("htmx:wsClose", function () {
    var status = document.getElementById("connection-status");
    if (status) { status.textContent = "Connection lost, reconnecting… (replies keep being written on the server)"; status.classList.add("visible"); }
  });

  // Composer: Enter sends, Shift+Enter is a new line.
  document.addEventListener("keydown", function (evt) {
    var target = evt.target;
    if (target && target.id === "id_text" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      var form = target.form;
      if (form && !form.classList.contains("sending")) form.requestSubmit();
      return;
    }
    if (evt.key === "Escape") {
      var stop = document.querySelector(".message button.stop");
      if (stop) { evt.preventDefault(); stop.click(); }
      return;
    }
    if ((evt.ctrlKey || evt.metaKey) && evt.shiftKey && (evt.key === "o" || evt.key === "O")) {
      evt.preventDefault();
      window.location.href = "/c/new/";
    }
  });

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "composer") evt.detail.elt.classList.add("sending");
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || form.id !== "composer") return;
    form.classList.remove("sending");
    if (evt.detail.successful) {
      form.reset();
      var text = document.getElementById("id_text");
      if (text) text.focus();
      stickToBottom = true;
      afterContentChange();
    }
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("composer-errors");
    if (box) box.innerHTML = '<p id="composer-error" role="alert">Could not reach the server. Check your connection and try again; your message is still in the box.</p>';
  });
  document.addEventListener("htmx:responseError", function (evt) {
    var box = document.getElementById("composer-errors");
    if (box && evt.detail.xhr && evt.detail.xhr.status >= 500) {
      box.innerHTML = '<p id="composer-error" role="alert">The server had a problem (' + evt.detail.xhr.status + '). Nothing was lost; try again.</p>';
    }
  });

  // Copy the raw markdown of a reply.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.content ? source.content.textContent : source.textContent;
    navigator.clipboard.writeText(text).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  document.addEventListener("DOMContentLoaded", afterContentChange);
})();
