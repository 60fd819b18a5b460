// The chat header's model picker, searchable: a button naming the model, and a
// popup with a text box (role=combobox) over a list of the models grouped by relay
// (role=listbox), as in the WAI-ARIA APG's combobox with a listbox popup.
//
// It enhances the server's <select id="header-model">, which stays in the page
// (visually hidden) as the form's field: picking sets its value and sends it a
// `change`, so htmx posts exactly as before (one step), and attachments.js still
// reads the chosen <option> for what the model refuses. htmx replaces the whole
// form after a switch (out of band): the new one is enhanced again.
//
// Written here rather than taken from a library: a person has a dozen models or
// so, not thousands; a widget library would bring its own inline styles (our CSP
// allows none), its own strings (ours go through Django's JavaScriptCatalog:
// gettext/interpolate) and its own colours (ours are the theme's CSS variables in
// app.css, light and dark). The words of the model's marks come from the server
// (data-capabilities, the same words as the plain menu's options).
(function () {
  "use strict";

  var SHORTCUT_TITLE = "Ctrl+Shift+M";
  var current = null;     // the open picker, if any
  var refocus = false;    // a pick just replaced the form: the keyboard goes to the new button
  var ids = 0;


  // Case, width (full-width Latin) and accents aside: "flash", "ＦＬＡＳＨ" and
  // "Flash" are one word; Chinese text is compared as it is.
  function fold(text) {
    var folded = String(text || "").normalize("NFKC").toLocaleLowerCase();
    return folded.normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }

  // -- marks: what a model takes and makes ------------------------------------------
  var SVG = "http://www.w3.org/2000/svg";
  var ICONS = {
    image: ["M2.5 3.5h11v9h-11z", "M3 12l3.5-4 2.5 3 2-2 2.5 3", "M10 6.5a1 1 0 1 0 .01 0"],
    audio: ["M2.5 6.5v3", "M5.5 4v8", "M8.5 2v12", "M11.5 5v6", "M14 7v2"],
    video: ["M1.5 4.5h9v7h-9z", "M10.5 7l4-2v6l-4-2z"],
    pdf: ["M4 1.5h5.5l3 3v10H4z", "M9.5 1.5v3h3"],
    makes_images: ["M8 1.5l1.6 4.9 4.9 1.6-4.9 1.6L8 14.5l-1.6-4.9L1.5 8l4.9-1.6z"],
    check: ["M3 8.5l3 3 7-7"],
    caret: ["M4 6l4 4 4-4"]
  };

  function icon(name, className) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", className || "model-picker-icon");
    (ICONS[name] || []).forEach(function (d) {
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  function capabilitiesOf(option) {
    try {
      var found = JSON.parse(option.getAttribute("data-capabilities") || "{}");
      return found && typeof found === "object" ? found : {};
    } catch (e) { return {}; }
  }

  function nameOf(option) {
    return option.getAttribute("data-name") || option.textContent.trim();
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- building the picker from the select --------------------------------------------
  function enhance(form) {
    var select = form.querySelector("select#header-model");
    if (!select || form.hasAttribute("data-enhanced")) return;
    form.setAttribute("data-enhanced", "");
    var n = ++ids;
    var labelEl = form.querySelector('label[for="header-model"]');
    var labelText = labelEl ? labelEl.textContent.trim() : "";

    // The select stays the form's field, out of sight and out of the way.
    select.classList.add("visually-hidden");
    select.setAttribute("tabindex", "-1");
    select.setAttribute("aria-hidden", "true");

    var button = el("button", "model-picker-button");
    button.type = "button";
    button.id = "header-model-button";
    button.setAttribute("aria-haspopup", "dialog");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-keyshortcuts", "Control+Shift+M Meta+Shift+M");
    button.title = (select.title ? select.title + " " : "") + "(" + SHORTCUT_TITLE + ")";
    // Said before the name to a screen reader: what this button is for.
    var buttonLabel = el("span", "visually-hidden", labelText + ": ");
    var buttonName = el("span", "model-picker-name");
    button.appendChild(buttonLabel);
    button.appendChild(buttonName);
    button.appendChild(icon("caret", "model-picker-caret"));

    var popup = el("div", "model-picker-popup");
    popup.id = "model-picker-popup-" + n;
    popup.hidden = true;
    popup.setAttribute("role", "dialog");
    popup.setAttribute("aria-label", gettext("Choose a model"));
    button.setAttribute("aria-controls", popup.id);

    var inputLabel = el("label", "visually-hidden", gettext("Find a model"));
    var input = el("input", "model-picker-search");
    input.id = "model-picker-search-" + n;
    inputLabel.htmlFor = input.id;
    input.type = "text";
    input.autocomplete = "off";
    input.spellcheck = false;
    input.placeholder = gettext("Name, relay or what it takes…");
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("enterkeyhint", "go");

    var list = el("div", "model-picker-list");
    list.id = "model-picker-list-" + n;
    list.setAttribute("role", "listbox");
    // The keyboard stays in the text box (aria-activedescendant): a long list that
    // scrolls is no stop for Tab of its own.
    list.tabIndex = -1;
    // A name of its own: the select's label stays the select's alone.
    list.setAttribute("aria-label", gettext("Models"));
    input.setAttribute("aria-controls", list.id);

    var empty = el("p", "model-picker-empty");
    empty.setAttribute("role", "status");

    var items = [];  // {node, option, haystack, group}
    var groups = [];
    function addItem(option, container, relay, group) {
      if (option.disabled) return;
      var node = el("div", "model-picker-option");
      node.id = list.id + "-" + items.length;
      node.setAttribute("role", "option");
      node.setAttribute("data-value", option.value);
      var text = el("span", "model-picker-option-text");
      text.appendChild(el("span", "model-picker-option-name", nameOf(option)));
      var caps = capabilitiesOf(option);
      var words = [];
      var kinds = Object.keys(caps);
      if (kinds.length) {
        var marks = el("span", "model-picker-marks");
        kinds.forEach(function (kind) {
          var mark = el("span", "model-picker-mark");
          mark.setAttribute("data-kind", kind);
          mark.appendChild(icon(kind));
          mark.appendChild(document.createTextNode(caps[kind]));
          marks.appendChild(mark);
          words.push(caps[kind]);
        });
        // A space between name and marks for what a screen reader says.
        text.appendChild(document.createTextNode(" "));
        text.appendChild(marks);
      }
      node.appendChild(icon("check", "model-picker-check"));
      node.appendChild(text);
      container.appendChild(node);
      items.push({
        node: node, option: option, group: group,
        haystack: fold([nameOf(option), option.getAttribute("data-model-id") || "", relay]
          .concat(words).join(" "))
      });
    }
    Array.prototype.forEach.call(select.children, function (child) {
      if (child.tagName === "OPTGROUP") {
        var group = el("div", "model-picker-group");
        group.setAttribute("role", "group");
        var heading = el("div", "model-picker-group-label", child.label);
        heading.id = list.id + "-g" + groups.length;
        heading.setAttribute("role", "presentation");
        group.setAttribute("aria-labelledby", heading.id);
        group.appendChild(heading);
        groups.push(group);
        Array.prototype.forEach.call(child.children, function (option) {
          addItem(option, group, child.label, group);
        });
        if (group.children.length > 1) list.appendChild(group);
      } else if (child.tagName === "OPTION") {
        addItem(child, list, "", null);
      }
    });

    popup.appendChild(inputLabel);
    popup.appendChild(input);
    popup.appendChild(list);
    popup.appendChild(empty);
    select.after(button);
    button.after(popup);

    var picker = {
      form: form, select: select, button: button, popup: popup, input: input, list: list,
      empty: empty, items: items, groups: groups, shown: [], active: -1
    };

    function showName() {
      var option = select.options[select.selectedIndex];
      buttonName.textContent = option ? nameOf(option) : "";
      items.forEach(function (item) {
        item.node.setAttribute("aria-selected", item.option.value === select.value ? "true" : "false");
      });
    }
    picker.showName = showName;
    form.modelPicker = picker;
    showName();

    button.addEventListener("click", function () {
      if (current === picker) close(picker, true); else open(picker);
    });
    button.addEventListener("keydown", function (evt) {
      if (evt.key === "ArrowDown" || evt.key === "ArrowUp") {
        evt.preventDefault();
        open(picker);
      }
    });
    input.addEventListener("input", function () { filter(picker, true); });
    // The text box's own `change` is not the model's: htmx posts on the select's only.
    input.addEventListener("change", function (evt) { evt.stopPropagation(); });
    input.addEventListener("keydown", function (evt) { onKey(picker, evt); });
    // Clicks in the popup keep the keyboard in the text box.
    popup.addEventListener("mousedown", function (evt) {
      if (evt.target !== input) evt.preventDefault();
    });
    list.addEventListener("click", function (evt) {
      var node = evt.target.closest && evt.target.closest('[role="option"]');
      if (node && !node.hidden) pick(picker, node.getAttribute("data-value"));
    });
    list.addEventListener("mousemove", function (evt) {
      var node = evt.target.closest && evt.target.closest('[role="option"]');
      var index = node ? picker.shown.indexOf(node) : -1;
      if (index !== -1 && index !== picker.active) activate(picker, index, false);
    });
    popup.addEventListener("focusout", function () {
      // Tab (or Shift+Tab), or a click elsewhere: the popup closes (not when the
      // window loses focus).
      setTimeout(function () {
        if (current !== picker || !document.hasFocus()) return;
        if (!popup.contains(document.activeElement)) close(picker, false);
      }, 0);
    });
    select.addEventListener("change", function () { showName(); });

    if (refocus) {
      refocus = false;
      var focused = document.activeElement;
      if (!focused || focused === document.body || !document.contains(focused)) {
        button.focus({ preventScroll: true });
      }
    }
  }

  // -- open, filter, move, pick -------------------------------------------------------
  function open(picker) {
    if (current && current !== picker) close(current, false);
    current = picker;
    picker.popup.hidden = false;
    picker.button.setAttribute("aria-expanded", "true");
    picker.input.value = "";
    filter(picker, false);
    place(picker);
    picker.input.focus({ preventScroll: true });
  }

  function close(picker, toButton) {
    if (current === picker) current = null;
    picker.popup.hidden = true;
    picker.button.setAttribute("aria-expanded", "false");
    picker.input.setAttribute("aria-expanded", "false");
    picker.input.removeAttribute("aria-activedescendant");
    if (toButton && document.contains(picker.button)) picker.button.focus();
  }

  function filter(picker, firstMatch) {
    var words = fold(picker.input.value).split(/\s+/).filter(Boolean);
    picker.shown = [];
    picker.items.forEach(function (item) {
      var match = words.every(function (word) { return item.haystack.indexOf(word) !== -1; });
      item.node.hidden = !match;
      if (match) picker.shown.push(item.node);
    });
    picker.groups.forEach(function (group) {
      group.hidden = !group.querySelector('[role="option"]:not([hidden])');
    });
    var none = picker.shown.length === 0;
    picker.list.hidden = none;
    picker.input.setAttribute("aria-expanded", none ? "false" : "true");
    picker.empty.textContent = none ? gettext("No model matches") : "";
    var start = -1;
    if (!none) {
      start = 0;
      if (!firstMatch) {
        var chosen = picker.shown.findIndex(function (node) {
          return node.getAttribute("data-value") === picker.select.value;
        });
        if (chosen !== -1) start = chosen;
      }
    }
    activate(picker, start, true);
  }

  function activate(picker, index, scroll) {
    picker.items.forEach(function (item) { item.node.classList.remove("active"); });
    picker.active = index;
    var node = picker.shown[index];
    if (!node) { picker.input.removeAttribute("aria-activedescendant"); return; }
    node.classList.add("active");
    picker.input.setAttribute("aria-activedescendant", node.id);
    if (scroll) node.scrollIntoView({ block: "nearest" });
  }

  function move(picker, to) {
    if (!picker.shown.length) return;
    activate(picker, Math.max(0, Math.min(picker.shown.length - 1, to)), true);
  }

  function onKey(picker, evt) {
    if (evt.isComposing) return;  // an input method is still choosing characters
    var last = picker.shown.length - 1;
    switch (evt.key) {
      case "ArrowDown":
        evt.preventDefault(); move(picker, picker.active + 1); break;
      case "ArrowUp":
        evt.preventDefault();
        if (evt.altKey) { close(picker, true); break; }
        move(picker, picker.active - 1); break;
      case "PageDown":
        evt.preventDefault(); move(picker, picker.active + 8); break;
      case "PageUp":
        evt.preventDefault(); move(picker, picker.active - 8); break;
      case "Home":
        evt.preventDefault(); move(picker, 0); break;
      case "End":
        evt.preventDefault(); move(picker, last); break;
      case "Enter":
        evt.preventDefault();  // never a plain submit of the form
        if (picker.shown[picker.active]) pick(picker, picker.shown[picker.active].getAttribute("data-value"));
        break;
      case "Escape":
        // Only the popup closes: not a settings panel, not the reply being written.
        evt.preventDefault();
        evt.stopPropagation();
        close(picker, true);
        break;
    }
  }

  function pick(picker, value) {
    close(picker, true);
    if (value === picker.select.value) return;
    picker.select.value = value;
    picker.showName();
    refocus = true;  // the response replaces the form: the new button gets the keyboard
    picker.select.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Below the button, within the screen (a phone's too), the list scrolling inside.
  function place(picker) {
    var popup = picker.popup;
    var box = picker.button.getBoundingClientRect();
    var viewport = window.visualViewport;
    var width = document.documentElement.clientWidth;
    var height = viewport ? viewport.height : window.innerHeight;
    var popupWidth = Math.min(480, width - 16);
    var left = Math.max(8, Math.min(box.left, width - popupWidth - 8));
    var top = Math.max(8, box.bottom + 4);
    popup.style.left = left + "px";
    popup.style.top = top + "px";
    popup.style.width = popupWidth + "px";
    var search = picker.input.getBoundingClientRect().height || 44;
    picker.list.style.maxHeight = Math.max(132, height - top - search - 40) + "px";
  }
  function replace() { if (current) place(current); }
  window.addEventListener("resize", replace);
  window.addEventListener("scroll", replace, { passive: true });
  if (window.visualViewport) window.visualViewport.addEventListener("resize", replace);

  // A click outside closes the popup (where the click went keeps the keyboard).
  document.addEventListener("pointerdown", function (evt) {
    if (!current) return;
    if (current.popup.contains(evt.target) || current.button.contains(evt.target)) return;
    close(current, false);
  });

  // Ctrl+Shift+M (Cmd+Shift+M on a Mac) opens the picker from anywhere on the page
  // (over the browser's own use of it: the page listens first); on a new chat's
  // page, where the model is a plain menu, it goes to that menu.
  document.addEventListener("keydown", function (evt) {
    if (!(evt.ctrlKey || evt.metaKey) || !evt.shiftKey || evt.altKey) return;
    if (evt.key !== "m" && evt.key !== "M" && evt.code !== "KeyM") return;
    var button = document.getElementById("header-model-button");
    if (!button) {
      var menu = document.getElementById("id_model");
      if (menu) { evt.preventDefault(); menu.focus(); }
      return;
    }
    evt.preventDefault();
    var form = button.closest("form");
    if (current && current.form === form) { current.input.focus(); return; }
    button.click();
  });

  // A switch the server refused: the header goes back to the model the chat has
  // (the option the server marked selected).
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail && evt.detail.elt;
    if (!form || form.id !== "model-label" || evt.detail.successful) return;
    refocus = false;
    var select = form.querySelector("select#header-model");
    var had = select && Array.prototype.find.call(select.options, function (option) {
      return option.defaultSelected;
    });
    if (had && select.value !== had.value) {
      select.value = had.value;
      if (form.modelPicker) form.modelPicker.showName();
    }
  });

  function enhanceAll() {
    document.querySelectorAll("form.model-picker").forEach(enhance);
  }
  document.addEventListener("DOMContentLoaded", enhanceAll);
  document.addEventListener("htmx:load", enhanceAll);
  document.addEventListener("htmx:afterSettle", enhanceAll);
  if (document.readyState !== "loading") enhanceAll();
})();
