// Relay Workbench: the small amount of behaviour htmx does not give us.
(function () {
  "use strict";

  var APP_NAME = "Relay Workbench";

  function byId(id) { return document.getElementById(id); }
  function composerText() { return byId("id_text"); }

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT" || el.isContentEditable;
  }

  // Where focus goes when the element that had it is replaced: the same kind
  // of control in the new element, else the message box.
  function refocusAfterReplace(newElement, oldFocused) {
    var again = null;
    if (oldFocused && oldFocused.classList && oldFocused.classList.length) {
      again = newElement.querySelector("." + oldFocused.classList[0]);
    }
    if (!again || again.disabled) again = composerText();
    if (again) again.focus({ preventScroll: true });
  }

  // A reader who unfolded the reasoning keeps it unfolded when the message
  // is re-rendered (e.g. when the reply finishes).
  function keepOpenDetails(oldElement, newElement) {
    if (!oldElement.querySelectorAll || !newElement.querySelectorAll) return;
    var before = oldElement.querySelectorAll("details");
    var after = newElement.querySelectorAll("details");
    for (var i = 0; i < before.length && i < after.length; i++) {
      if (before[i].open && before[i].className === after[i].className) after[i].open = true;
    }
  }

  // A sidebar entry sent without its cost (a post spends nothing) takes the label
  // the page shows; the page refreshes it when the reply ends.
  function keepCost(existing, child) {
    if (!child.querySelector) return;
    var blank = child.querySelector(".cost[data-unchanged]");
    var shown = blank && existing.querySelector(".cost");
    if (shown) blank.replaceWith(shown);
  }

  // Upsert: an out-of-band swap marked data-upsert replaces children whose id
  // already exists and appends (or prepends) the rest. Frames can therefore be
  // sent twice (reconnects, second tabs) without duplicating anything.
  // A container marked data-newest-first (the sidebar) moves an updated child
  // to the top instead of replacing it in place.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail.fragment;
    if (!fragment || !fragment.hasAttribute || !fragment.hasAttribute("data-upsert")) return;
    var target = evt.detail.target;
    var sort = byId("sidebar-sort");  // the sidebar may be sorted by something else
    var moveToTop = target && target.hasAttribute && target.hasAttribute("data-newest-first") &&
      !(sort && sort.value && sort.value !== "recent");
    Array.prototype.slice.call(fragment.children).forEach(function (child) {
      if (!child.id) return;
      var existing = document.getElementById(child.id);
      if (!existing) {
        // A numbered block (a reply's markdown) goes before the first later one:
        // a second tab may be sent block 3 live before the snapshot brings 0-2.
        var later = laterBlock(target, child);
        if (later) later.before(child);
        return;
      }
      if (moveToTop) {
        keepCost(existing, child);
        existing.remove();
        return;
      }
      if (isStaleCopy(existing, child)) { child.remove(); return; }
      keepCost(existing, child);
      var focused = document.activeElement;
      var hadFocus = focused && focused !== document.body && existing.contains(focused);
      keepOpenDetails(existing, child);
      existing.replaceWith(child);
      // htmx only wires up what it swaps itself: a replaced Stop or Retry
      // button needs its hx-post bound here.
      if (window.htmx) window.htmx.process(child);
      if (hadFocus) refocusAfterReplace(child, focused);
    });
    if (moveToTop && fragment.children.length) {
      var empty = byId("no-conversations");
      if (empty) empty.remove();
    }
  });

  // A message never goes back from finished to in flight (a retry is a new message):
  // an in-flight copy arriving after its end is older news. A post's own response
  // can land after a fast failure's socket frame, and put "waiting…" back for good.
  var IN_FLIGHT = { pending: true, streaming: true };
  function isStaleCopy(existing, child) {
    var before = existing.getAttribute("data-status");
    var after = child.getAttribute && child.getAttribute("data-status");
    return !!before && !!after && !IN_FLIGHT[before] && IN_FLIGHT[after];
  }

  var BLOCK_NUMBER = /^m\d+-[a-z](\d+)$/;
  function laterBlock(container, child) {
    var own = BLOCK_NUMBER.exec(child.id);
    if (!own || !container) return null;
    var number = parseInt(own[1], 10);
    for (var node = container.firstElementChild; node; node = node.nextElementSibling) {
      var theirs = BLOCK_NUMBER.exec(node.id);
      if (theirs && parseInt(theirs[1], 10) > number) return node;
    }
    return null;
  }

  function messageList() { return byId("message-list"); }

  function nearBottom() {
    var el = document.scrollingElement || document.documentElement;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 160;
  }

  var stickToBottom = true;
  window.addEventListener("scroll", function () { stickToBottom = nearBottom(); }, { passive: true });

  var errorWhileBusy = false;

  function clearComposerError() {
    var box = byId("composer-errors");
    if (box) box.replaceChildren();
  }

  function replyInFlight() {
    var list = messageList();
    return !!(list && list.querySelector('article[data-status="pending"], article[data-status="streaming"]'));
  }

  function afterContentChange() {
    var list = messageList();
    if (list) {
      var empty = byId("empty-conversation");
      if (empty) empty.hidden = list.children.length > 0;
      list.querySelectorAll("details.reasoning[hidden]").forEach(function (d) {
        if (d.querySelector(".md-block")) d.hidden = false;
      });
      var composer = byId("composer");
      var busy = replyInFlight();
      if (composer) composer.classList.toggle("reply-in-flight", busy);
      // "Wait for the current reply" is out of date once the reply is done.
      if (!busy && errorWhileBusy) { clearComposerError(); errorWhileBusy = false; }
    }
    var title = byId("conversation-title");
    if (title && title.textContent.trim()) {
      document.title = title.textContent.trim() + " · " + APP_NAME;
    }
    // Only a conversation follows its newest text; other pages (costs) stay at the top.
    if (stickToBottom && list) window.scrollTo(0, document.body.scrollHeight);
  }

  // Where the model's view of a long conversation begins (the meter says, once
  // older turns no longer fit its window): a note above that message.
  function markViewStart() {
    var note = document.querySelector("[data-view-start]");
    var start = note && byId(note.getAttribute("data-view-start"));
    var marker = document.querySelector(".view-start-marker");
    if (marker && (!start || marker.nextElementSibling !== start)) { marker.remove(); marker = null; }
    if (!start || marker) return;
    marker = document.createElement("p");
    marker.className = "view-start-marker";
    marker.setAttribute("role", "note");
    marker.textContent = note.getAttribute("data-view-start-label");
    start.before(marker);
  }
  document.addEventListener("htmx:afterSettle", markViewStart);
  document.addEventListener("DOMContentLoaded", markViewStart);

  document.addEventListener("htmx:oobAfterSwap", afterContentChange);
  document.addEventListener("htmx:wsAfterMessage", afterContentChange);

  // Connection state, so a dropped socket is visible rather than silent.
  function connectionStatus(text) {
    var status = byId("connection-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("visible", !!text);
  }
  // Reconnecting: retries at most RECONNECT_CAP_MS apart (htmx's default grows to a
  // minute, so a page stayed stale long after the network came back), and at once
  // when the browser says the network is back or the tab is shown again. The
  // consumer sends the current state on every connect.
  var RECONNECT_CAP_MS = 2000;
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retryCount) {
      var delay = Math.min(250 * Math.pow(2, retryCount), RECONNECT_CAP_MS);
      return delay * (0.75 + Math.random() * 0.25);
    };
  }
  // Reconnecting, the page says what it caught up with last (the consumer's
  // stamp, kept in #catch-up-stamp): the consumer then sends the stamp alone
  // if nothing on screen has changed. Anything else the socket brings after
  // the catch-up (a frame, a finished reply) makes the page's copy its own,
  // so the stamp is dropped and the next connect catches up in full.
  function caughtUpStamp() {
    var marker = byId("catch-up-stamp");
    return marker ? marker.getAttribute("data-stamp") || "" : "";
  }
  if (window.htmx) {
    htmx.createWebSocket = function (url) {
      var stamp = caughtUpStamp();
      if (stamp) url += (url.indexOf("?") < 0 ? "?" : "&") + "seen=" + encodeURIComponent(stamp);
      var socket = new WebSocket(url, []);
      socket.binaryType = htmx.config.wsBinaryType;
      return socket;
    };
  }
  document.addEventListener("htmx:wsAfterMessage", function (evt) {
    var message = String(evt.detail.message || "");
    if (message.indexOf('id="catch-up-stamp"') >= 0) return;
    var marker = byId("catch-up-stamp");
    if (marker) marker.removeAttribute("data-stamp");
  });
  var socketWrapper = null;  // the ws extension's handle on this page's socket
  var openSocket = null;
  document.addEventListener("htmx:wsOpen", function (evt) {
    socketWrapper = evt.detail.socketWrapper;
    openSocket = evt.detail.event.target;
    connectionStatus("");
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    socketWrapper = evt.detail.socketWrapper || socketWrapper;
    // A replaced socket closing while its successor is open is no lost connection.
    if (openSocket && evt.detail.event.target !== openSocket
        && openSocket.readyState === WebSocket.OPEN) return;
    openSocket = null;
    showConnectionLost();
  });
  function showConnectionLost() {
    connectionStatus(navigator.onLine === false
      ? gettext("You are offline. The page reconnects as soon as the network is back; replies keep being written on the server.")
      : gettext("Connection lost, reconnecting… Replies keep being written on the server; nothing is lost."));
  }
  function reconnectNow() {
    if (!socketWrapper || openSocket) return;
    if (document.visibilityState === "hidden" || navigator.onLine === false) return;
    socketWrapper.reconnect();
  }
  window.addEventListener("online", reconnectNow);
  // The network is gone: say so now instead of after the socket times out, and
  // reconnect on "online" rather than on a timer.
  window.addEventListener("offline", function () {
    // Said at once: a socket closed without a network may report its close late.
    var lost = openSocket;
    openSocket = null;
    showConnectionLost();
    if (lost) lost.close();
  });
  document.addEventListener("visibilitychange", reconnectNow);

  // -- keyboard ------------------------------------------------------------------
  document.addEventListener("keydown", function (evt) {
    var target = evt.target;
    // Composer: Enter sends, Shift+Enter is a new line.
    if (target && target.id === "id_text" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      var form = target.form;
      if (form && !form.classList.contains("sending")) form.requestSubmit();
      return;
    }
    if (evt.key === "Escape") {
      // Close an open panel first; otherwise stop the reply being written.
      var panel = document.querySelector("details.settings-panel[open], .conversation-actions details[open]");
      if (panel) {
        evt.preventDefault();
        panel.open = false;
        var summary = panel.querySelector("summary");
        if (summary) summary.focus();
        return;
      }
      var sidebar = byId("sidebar");
      if (sidebar && sidebar.classList.contains("open")) { evt.preventDefault(); toggleSidebar(false); return; }
      var stop = document.querySelector(".message button.stop");
      if (stop) { evt.preventDefault(); stop.click(); }
      return;
    }
    if (evt.key === "/" && !isTyping(target) && !evt.ctrlKey && !evt.metaKey && !evt.altKey) {
      var text = composerText();
      if (text) { evt.preventDefault(); text.focus(); }
      return;
    }
    if ((evt.ctrlKey || evt.metaKey) && !evt.shiftKey && (evt.key === "k" || evt.key === "K")) {
      var search = byId("sidebar-search-box");
      if (search) { evt.preventDefault(); search.focus(); search.select(); }
      return;
    }
    if ((evt.ctrlKey || evt.metaKey) && evt.shiftKey && (evt.key === "o" || evt.key === "O")) {
      evt.preventDefault();
      var newChat = byId("new-chat");
      window.location.href = newChat ? newChat.href : "/c/new/";
    }
  });

  // -- the composer's request ------------------------------------------------------
  function isComposer(elt) { return elt && elt.id === "composer"; }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (isComposer(elt)) {
      elt.classList.add("sending");
      elt.setAttribute("aria-busy", "true");
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    // htmx says a request ended a second time, on the nearest parent still in the
    // page, when the element that made it was replaced: the context meter's refresh
    // (inside the composer) is no answer to the composer, and must not empty the
    // message box nor take the keyboard from where the person is.
    var config = evt.detail.requestConfig;
    if (config && config.elt && config.elt !== elt) return;
    if (elt && elt.classList && (elt.classList.contains("stop") || elt.classList.contains("retry"))) {
      // The button is gone after the swap: keep the keyboard somewhere useful.
      if (!document.activeElement || document.activeElement === document.body) {
        var box = composerText();
        if (box) box.focus({ preventScroll: true });
      }
      stickToBottom = true;
      afterContentChange();
      return;
    }
    if (!isComposer(elt)) return;
    elt.classList.remove("sending");
    elt.removeAttribute("aria-busy");
    // A 422 is swapped (it carries the error) but must not clear the box.
    var xhr = evt.detail.xhr;
    var accepted = evt.detail.successful && !!xhr && xhr.status < 300;
    // "Wait for the current reply" goes away when that reply ends; other errors stay.
    if (!accepted && replyInFlight() &&
        document.querySelector("#composer-error[data-until-reply-ends]")) errorWhileBusy = true;
    if (accepted) {
      // The picture options are kept with the conversation: keep them shown too.
      var kept = Array.prototype.map.call(elt.querySelectorAll(".picture-controls select"),
        function (select) { return [select, select.value]; });
      elt.reset();
      kept.forEach(function (pair) { pair[0].value = pair[1]; });
      choosePicture("", "");
      autoGrow();
      var text = composerText();
      if (text) text.focus();
      stickToBottom = true;
      afterContentChange();
    }
  });

  function showComposerError(message) {
    var box = byId("composer-errors");
    if (!box) return;
    box.replaceChildren();
    var p = document.createElement("p");
    p.id = "composer-error";
    p.setAttribute("role", "alert");
    p.textContent = message;
    box.appendChild(p);
  }
  document.addEventListener("htmx:sendError", function () {
    showComposerError(gettext("Could not reach the server. Check your connection and try again; your message is still in the box."));
  });
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr) return;
    if (xhr.status === 403) {
      showComposerError(gettext("The server refused this (403). Your session may have expired: reload the page and sign in again; your message is still in the box."));
    } else if (xhr.status === 404) {
      showComposerError(gettext("That conversation or message no longer exists (404). It may have been deleted in another tab."));
    } else if (xhr.status === 413) {
      showComposerError(gettext("That is too large for the server to accept (413). Send fewer or smaller files."));
    } else if (xhr.status >= 500) {
      showComposerError(interpolate(gettext("The server had a problem (%(status)s). Nothing was lost; try again."),
        { status: xhr.status }, true));
    }
  });

  // The message box grows with its text, up to a limit set in CSS.
  function autoGrow() {
    var text = composerText();
    if (!text) return;
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }
  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "id_text") autoGrow();
  });

  // -- copy ----------------------------------------------------------------------------
  // The clipboard, or a hidden text area where it is not available (plain HTTP).
  // Shared with markdown.js (code blocks' Copy), which loads after this script.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen-copy";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }
  window.relayWorkbench = { copyText: copyText };

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.content ? source.content.textContent : source.textContent;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(text).then(function () {
      button.textContent = gettext("Copied");
    }, function () {
      button.textContent = gettext("Copy failed");
    }).then(function () {
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // -- the sidebar on small screens ----------------------------------------------------
  function toggleSidebar(open) {
    var sidebar = byId("sidebar");
    var toggle = document.querySelector(".sidebar-toggle");
    if (!sidebar || !toggle) return;
    if (open === undefined) open = !sidebar.classList.contains("open");
    sidebar.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = sidebar.querySelector("a");
      if (first) first.focus();
    } else if (sidebar.contains(document.activeElement) || document.activeElement === document.body) {
      toggle.focus();  // closed: the keyboard goes back to the button that opened it
    }
  }
  document.addEventListener("click", function (evt) {
    if (!evt.target.closest) return;
    if (evt.target.closest(".sidebar-toggle")) { toggleSidebar(); return; }
    var sidebar = byId("sidebar");
    if (sidebar && sidebar.classList.contains("open") && !evt.target.closest("#sidebar")) {
      toggleSidebar(false);
    }
  });

  // -- the picture the next message edits ------------------------------------------
  function choosePicture(uuid, label) {
    var input = byId("edit-picture");
    var chip = byId("edit-picture-chip");
    if (!input || !chip) return;
    input.value = uuid;
    chip.querySelector(".edit-picture-label").textContent = label;
    chip.hidden = !uuid;
    document.querySelectorAll(".picture.chosen, .attachment.chosen").forEach(function (el) {
      el.classList.remove("chosen");
    });
    if (uuid) {
      document.querySelectorAll('[data-edit-picture="' + uuid + '"]').forEach(function (button) {
        var holder = button.closest(".picture, .attachment");
        if (holder) holder.classList.add("chosen");
      });
    }
  }
  document.addEventListener("click", function (evt) {
    if (!evt.target.closest) return;
    var pick = evt.target.closest("[data-edit-picture]");
    if (pick) {
      choosePicture(pick.getAttribute("data-edit-picture"), pick.getAttribute("data-edit-label"));
      var text = composerText();
      if (text) text.focus();
      return;
    }
    if (evt.target.closest(".edit-picture-clear")) choosePicture("", "");
  });

  // -- settings ------------------------------------------------------------------------
  // A save replaces the settings form's fields: the keyboard that was on them (now
  // on <body>) goes back into the form. Not when the person has moved on, to the
  // message box say: an Enter meant for the message would press Save instead.
  document.addEventListener("htmx:afterSwap", function (evt) {
    var target = evt.detail.target;
    if (target && target.id === "settings-form") {
      var form = target;  // it stays in the page: only its inside is replaced
      var focused = document.activeElement;
      if (focused && focused !== document.body && !form.contains(focused)) return;
      var focusTarget = (form.querySelector('[aria-invalid="true"], .error') ? form.querySelector("select, input, textarea") : form.querySelector("button[type=submit]"));
      if (focusTarget) focusTarget.focus({ preventScroll: true });
    }
  });

  // A menu that applies as soon as it changes (the language menu).
  document.addEventListener("change", function (evt) {
    var select = evt.target;
    if (select && select.hasAttribute && select.hasAttribute("data-submit-on-change") && select.form) {
      select.form.requestSubmit();
    }
  });

  // Opened at a message (a search result): show it, and do not follow the bottom.
  var foundMatch = /^#(message-\d+)$/.exec(window.location.hash);
  var foundId = foundMatch ? foundMatch[1] : null;
  function markFound() {
    // Again after each swap: a reconnecting socket re-sends the latest messages.
    var found = foundId && byId(foundId);
    if (found) found.classList.add("found");
    return found;
  }
  document.addEventListener("htmx:oobAfterSwap", markFound);
  document.addEventListener("htmx:wsAfterMessage", markFound);

  document.addEventListener("DOMContentLoaded", function () {
    var found = markFound();
    if (found) stickToBottom = false;
    afterContentChange();
    if (found) found.scrollIntoView({ block: "center" });
    autoGrow();
  });
})();
