// Relay Workbench: what rendered markdown needs in the page (conversations/rendering.py).
// Replies arrive over the WebSocket after load, so everything is delegated
// from the document: nothing is bound to the rendered elements themselves.
(function () {
  "use strict";

  var COPIED_FOR = 2000; // ms the button says "Copied"


  // -- Copy on code blocks -----------------------------------------------------------
  function copyText(text) { return window.relayWorkbench.copyText(text); }  // chat.js

  function label(button, text, name) {
    if (button.textContent !== text) button.textContent = text;
    if (button.getAttribute("aria-label") !== name) button.setAttribute("aria-label", name);
  }

  function showFor(button, text) {
    label(button, text, text);
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button._copyTimer = null;
      label(button, gettext("Copy"), gettext("Copy code"));
      button.classList.remove("copied");
    }, COPIED_FOR);
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button.code-copy");
    if (!button) return;
    var code = button.parentElement && button.parentElement.querySelector("pre code, pre");
    if (!code) return;
    copyText(code.textContent).then(function () {
      button.classList.add("copied");
      showFor(button, gettext("Copied"));
    }, function () {
      showFor(button, gettext("Copy failed"));
    });
  });

  // The server writes the label in the language it rendered in, and keeps
  // that HTML for every later page: label each new button in the page's language.
  function labelButtons(root) {
    if (!root.querySelectorAll) return;
    var buttons = root.matches && root.matches("button.code-copy") ? [root]
      : root.querySelectorAll("button.code-copy");
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i]._copyTimer) label(buttons[i], gettext("Copy"), gettext("Copy code"));
    }
  }

  // -- footnotes -----------------------------------------------------------------------
  // A message's footnotes carry no ids (every message has its own [^1]): a
  // reference leads to the definition of its label within the same message.
  function scopeOf(el) {
    var block = el.closest(".md-block");
    return (block && block.parentElement) || el.closest("article") || document;
  }

  function attributeSelector(name, value) {
    return "[" + name + '="' + (window.CSS && CSS.escape ? CSS.escape(value) : value) + '"]';
  }

  function goTo(target) {
    if (!target) return;
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "center", behavior: "smooth" });
    target.focus({ preventScroll: true });
    target.classList.add("footnote-target");
    setTimeout(function () { target.classList.remove("footnote-target"); }, COPIED_FOR);
  }

  document.addEventListener("click", function (evt) {
    if (!evt.target.closest) return;
    var ref = evt.target.closest("a[data-footnote-ref]");
    var back = !ref && evt.target.closest("a[data-footnote-back]");
    if (!ref && !back) return;
    evt.preventDefault();
    var scope = scopeOf(ref || back);
    if (ref) {
      goTo(scope.querySelector(attributeSelector("data-footnote", ref.getAttribute("data-footnote-ref"))));
    } else {
      var label = back.getAttribute("data-footnote-back");
      var first = scope.querySelector(attributeSelector("data-footnote-ref", label));
      goTo(first && first.parentElement);
    }
  });

  function start() {
    labelButtons(document);
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        var added = records[i].addedNodes;
        for (var j = 0; j < added.length; j++) {
          if (added[j].nodeType === 1) labelButtons(added[j]);
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
