// Attachments in the composer: pick, drop or paste files, preview and remove
// them, and watch the upload. The server decides what is accepted (from the
// bytes, not the names); the checks here only spare a long upload that the
// server would refuse anyway.
(function () {
  "use strict";

  var chosen = [];          // the File objects to send, in order
  var objectUrls = [];      // preview URLs to release on the next render
  var savedText = null;     // the message text while a request is in flight

  function byId(id) { return document.getElementById(id); }
  function composer() { return byId("composer"); }
  function fileInput() { return byId("id_files"); }

  function limits() {
    var input = fileInput();
    try { return JSON.parse(input.getAttribute("data-limits") || "{}"); } catch (e) { return {}; }
  }

  function kindOf(file) {
    var type = (file.type || "").toLowerCase();
    var name = (file.name || "").toLowerCase();
    if (type === "application/pdf" || /\.pdf$/.test(name)) return "pdf";
    if (type.indexOf("image/") === 0 || /\.(png|jpe?g|webp|gif|heic|heif)$/.test(name)) return "image";
    if (type.indexOf("audio/") === 0 || /\.(wav|mp3|m4a|ogg|oga|opus|flac|aac)$/.test(name)) return "audio";
    if (type.indexOf("video/") === 0 || /\.(mp4|mov|webm|mkv|avi|mpe?g|wmv|flv|3gp)$/.test(name)) return "video";
    return "file";
  }

  // What a file too large for its kind is told, by kind (kindOf).
  var TOO_LARGE = {
    image: gettext("“%(name)s”: it is %(size)s, and images can be at most %(max)s."),
    audio: gettext("“%(name)s”: it is %(size)s, and audio files can be at most %(max)s."),
    video: gettext("“%(name)s”: it is %(size)s, and videos can be at most %(max)s."),
    pdf: gettext("“%(name)s”: it is %(size)s, and PDFs can be at most %(max)s."),
    file: gettext("“%(name)s”: it is %(size)s, and files can be at most %(max)s.")
  };

  function sizeWords(bytes) {
    if (bytes >= 1024 * 1024) {
      return interpolate(gettext("%(size)s MB"), { size: (bytes / (1024 * 1024)).toFixed(1) }, true);
    }
    return interpolate(gettext("%(size)s KB"), { size: Math.max(1, Math.round(bytes / 1024)) }, true);
  }

  function syncInput() {
    var input = fileInput();
    if (!input) return;
    var transfer = new DataTransfer();
    chosen.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
  }

  function showWarning(text) {
    var box = byId("composer-errors");
    if (!box) return;
    box.replaceChildren();
    if (!text) return;
    var p = document.createElement("p");
    p.id = "composer-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.appendChild(p);
  }

  // Problems the server would report too, found before anything is uploaded.
  function problems() {
    var lim = limits();
    var found = [];
    var total = 0;
    if (lim.maxFiles && chosen.length > lim.maxFiles) {
      found.push(interpolate(ngettext(
        "Attach at most %(max)s file to one message (there are %(count)s).",
        "Attach at most %(max)s files to one message (there are %(count)s).", lim.maxFiles),
        { max: lim.maxFiles, count: chosen.length }, true));
    }
    chosen.forEach(function (file) {
      total += file.size;
      var refusal = refusalOf(file);
      if (refusal) found.push(refusal);
      var kind = kindOf(file);
      var max = lim.perKind && lim.perKind[kind];
      if (file.size === 0) {
        found.push(interpolate(gettext("“%(name)s”: the file is empty (0 bytes)."), { name: file.name }, true));
      } else if (max && file.size > max) {
        found.push(interpolate(TOO_LARGE[kind] || TOO_LARGE.file,
          { name: file.name, size: sizeWords(file.size), max: sizeWords(max) }, true));
      }
    });
    if (lim.maxTotal && total > lim.maxTotal) {
      found.push(interpolate(gettext("These files add up to %(total)s; one message can carry at most %(max)s."),
        { total: sizeWords(total), max: sizeWords(lim.maxTotal) }, true));
    }
    return found;
  }

  function pdfPages(file, target) {
    // A light look for the page count: the page tree's /Count, else the page objects.
    // Compressed object streams hide both; then only the name is shown.
    file.slice(0, Math.min(file.size, 8 * 1024 * 1024)).arrayBuffer().then(function (buffer) {
      var text = new TextDecoder("latin1").decode(buffer);
      var count = 0;
      var tree = /\/Type\s*\/Pages\b[^>]*?\/Count\s+(\d+)|\/Count\s+(\d+)[^>]*?\/Type\s*\/Pages\b/g;
      var match;
      while ((match = tree.exec(text)) !== null) count = Math.max(count, parseInt(match[1] || match[2], 10));
      if (!count) count = (text.match(/\/Type\s*\/Page(?![s\w])/g) || []).length;
      if (count) {
        target.textContent = interpolate(ngettext("PDF · %(count)s page · %(size)s", "PDF · %(count)s pages · %(size)s", count),
          { count: count, size: sizeWords(file.size) }, true);
      }
    }).catch(function () {});
  }

  function render() {
    var box = byId("attachment-previews");
    if (!box) return;
    objectUrls.forEach(function (url) { URL.revokeObjectURL(url); });
    objectUrls = [];
    box.replaceChildren();
    box.hidden = chosen.length === 0;
    if (!chosen.length) return;
    var list = document.createElement("ul");
    list.className = "attachments attachments-draft";
    chosen.forEach(function (file, index) {
      var kind = kindOf(file);
      var item = document.createElement("li");
      item.className = "attachment attachment-" + kind;
      item.setAttribute("data-kind", kind);
      item.setAttribute("data-name", file.name);
      var url = URL.createObjectURL(file);
      objectUrls.push(url);
      var media = null;
      if (kind === "image") {
        media = document.createElement("img");
        media.alt = file.name;
      } else if (kind === "audio") {
        media = document.createElement("audio");
        media.controls = true;
        media.preload = "metadata";
      } else if (kind === "video") {
        media = document.createElement("video");
        media.controls = true;
        media.muted = true;
        media.preload = "metadata";
      }
      if (media) {
        media.src = url;
        media.setAttribute("aria-label", file.name);
        item.appendChild(media);
      }
      var meta = document.createElement("span");
      meta.className = "attachment-meta";
      var name = document.createElement("span");
      name.className = "attachment-name";
      name.textContent = file.name;
      var info = document.createElement("span");
      info.className = "muted small attachment-info";
      info.textContent = kind === "pdf"
        ? interpolate(gettext("PDF · %(size)s"), { size: sizeWords(file.size) }, true)
        : sizeWords(file.size);
      if (kind === "pdf") pdfPages(file, info);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link remove-attachment";
      remove.textContent = gettext("Remove");
      remove.setAttribute("aria-label", interpolate(gettext("Remove %(name)s"), { name: file.name }, true));
      remove.addEventListener("click", function () {
        chosen.splice(index, 1);
        changed();
      });
      meta.appendChild(name);
      meta.appendChild(info);
      meta.appendChild(remove);
      item.appendChild(meta);
      list.appendChild(item);
    });
    box.appendChild(list);
  }

  // What the chosen model (the header's picker, or the new chat's) cannot be sent,
  // by kind, in words for this person: the server's own rule (capabilities.py).
  function modelRefusals() {
    var select = byId("header-model") || byId("id_model");
    var option = select && select.options[select.selectedIndex];
    if (!option) return {};
    try { return JSON.parse(option.getAttribute("data-refusals") || "{}"); } catch (e) { return {}; }
  }

  function refusalOf(file) {
    var reason = modelRefusals()[kindOf(file)];
    return reason
      ? interpolate(gettext("“%(name)s” cannot be sent: %(reason)s."), { name: file.name, reason: reason }, true)
      : "";
  }

  // `notAttached`: files refused as they were picked (nothing of them is uploaded).
  function changed(notAttached) {
    syncInput();
    render();
    var words = (notAttached || []).slice();
    var found = problems();
    if (found.length) {
      words.push(interpolate(gettext("%(problems)s Remove or replace it before sending."), { problems: found.join(" ") }, true));
    }
    showWarning(words.join(" "));
  }

  function add(files) {
    var refused = [];
    Array.prototype.forEach.call(files || [], function (file) {
      var refusal = refusalOf(file);
      if (refusal) { refused.push(refusal); return; }
      var duplicate = chosen.some(function (c) {
        return c.name === file.name && c.size === file.size && c.lastModified === file.lastModified;
      });
      if (!duplicate) chosen.push(file);
    });
    changed(refused);
  }

  // Another model picked with files attached: say at once what it cannot take.
  document.addEventListener("change", function (evt) {
    var id = evt.target && evt.target.id;
    if ((id === "header-model" || id === "id_model") && chosen.length) changed();
  });

  // The file dialog replaces the input's list: keep what was chosen before.
  document.addEventListener("change", function (evt) {
    if (evt.target !== fileInput()) return;
    var picked = Array.prototype.slice.call(evt.target.files || []);
    add(picked);
  });

  // Drag and drop: anywhere on a page with a composer (the composer lights up).
  function hasFiles(evt) {
    var types = evt.dataTransfer && evt.dataTransfer.types;
    return types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragover", function (evt) {
    var form = composer();
    if (!form || !hasFiles(evt)) return;
    evt.preventDefault();
    evt.dataTransfer.dropEffect = "copy";
    form.classList.add("drop-target");
  });
  document.addEventListener("dragleave", function (evt) {
    var form = composer();
    if (form && !evt.relatedTarget) form.classList.remove("drop-target");
  });
  document.addEventListener("drop", function (evt) {
    var form = composer();
    if (!form || !hasFiles(evt)) return;
    evt.preventDefault();  // never let the browser navigate to a dropped file
    form.classList.remove("drop-target");
    add(evt.dataTransfer.files);
  });

  // Paste a screenshot (or copied files) into the message box.
  document.addEventListener("paste", function (evt) {
    var form = composer();
    if (!form || !form.contains(evt.target)) return;
    var data = evt.clipboardData;
    if (!data || !data.files || !data.files.length) return;
    evt.preventDefault();
    var stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    add(Array.prototype.map.call(data.files, function (file, i) {
      // Pasted images are all called "image.png": give each its own name.
      if (file.name && file.name !== "image.png") return file;
      var extension = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
      return new File([file], "pasted-" + stamp + (i ? "-" + i : "") + "." + extension, { type: file.type, lastModified: file.lastModified });
    }));
  });

  // Upload progress, while there are files to upload.
  function progressBar() { return byId("upload-progress"); }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail.elt !== composer()) return;
    var text = byId("id_text");
    savedText = text ? text.value : null;
    var found = problems();
    if (found.length) {
      evt.preventDefault();
      showWarning(interpolate(gettext("%(problems)s Nothing was sent."), { problems: found.join(" ") }, true));
      return;
    }
    var bar = progressBar();
    if (bar && chosen.length) {
      bar.value = 0;
      bar.hidden = false;
      bar.removeAttribute("data-done");
    }
  });
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var bar = progressBar();
    if (!bar || bar.hidden || evt.target !== composer()) return;
    if (!evt.detail.lengthComputable || !evt.detail.total) return;
    if (bar.hasAttribute("data-done")) return;
    var percent = Math.round(100 * evt.detail.loaded / evt.detail.total);
    bar.value = percent;
    bar.textContent = percent + "%";
    if (percent >= 100) {
      bar.setAttribute("data-done", "");
      bar.removeAttribute("value");  // indeterminate while the server checks the files
      bar.setAttribute("aria-label", gettext("Checking the files"));
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.elt !== composer()) return;
    var bar = progressBar();
    if (bar) { bar.hidden = true; bar.value = 0; bar.setAttribute("aria-label", gettext("Upload progress")); }
    var xhr = evt.detail.xhr;
    var accepted = xhr && xhr.status >= 200 && xhr.status < 300;
    if (accepted) {
      chosen = [];
      syncInput();
      render();
      return;
    }
    // Refused (e.g. a file the server would not take): keep everything, so the
    // person can remove the file that was named and send again.
    var text = byId("id_text");
    if (text && savedText !== null && !text.value) text.value = savedText;
    syncInput();
    render();
  });
})();
