/* Leadvault embeddable form loader. No framework, no build step.
 * <script src="https://leads.example.com/widgets/VERSION/widget.js"
 *         data-leadvault-form="FORM_ID" async></script>
 * Renders the form in a shadow root (styles isolated both ways), posts JSON
 * to Leadvault, talks to no one else. Theme it with CSS custom properties:
 * --leadvault-accent, --leadvault-text, --leadvault-bg, --leadvault-error,
 * --leadvault-font, --leadvault-radius.
 */
(function () {
  "use strict";
  var counter = 0;
  var STORE = "leadvault.tracking";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) {
      if (attrs[key] === true) node.setAttribute(key, "");
      else if (attrs[key] !== false && attrs[key] != null) node.setAttribute(key, attrs[key]);
    }
    if (text != null) node.textContent = text;
    return node;
  }

  // The page's language tag as given; Leadvault picks the closest language it
  // has, else the one the browser asks for (its Accept-Language header).
  function languageOf(script) {
    return script.getAttribute("data-lang") || document.documentElement.lang || "";
  }

  function sourceOf() {
    var params = new URLSearchParams(location.search);
    var source = { page_url: location.href, referrer: document.referrer || undefined };
    ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"].forEach(function (name) {
      if (params.get(name)) source[name] = params.get(name);
    });
    // The visitor's time zone: the preference center shows dates in it.
    try {
      source.time_zone = Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
    } catch (e) { /* an old browser: the instance's time zone is used */ }
    return source;
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // ALTCHA proof of work: find n with SHA-256(salt + n) == challenge.
  async function solve(c) {
    var enc = new TextEncoder();
    for (var n = 0; n <= c.maxnumber; n++) {
      if (hex(await crypto.subtle.digest("SHA-256", enc.encode(c.salt + n))) === c.challenge) {
        return btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: n,
          salt: c.salt, signature: c.signature }));
      }
    }
    return "";
  }

  function input(prefix, field, cfg) {
    var id = prefix + field.name;
    var attrs = { id: id, name: field.name, required: !!field.required };
    if (field.name === "message") return el("textarea", Object.assign(attrs, { rows: 4 }));
    if (field.name === "company_size") {
      var select = el("select", attrs);
      select.appendChild(el("option", { value: "" }, "–"));
      cfg.company_sizes.forEach(function (size) { select.appendChild(el("option", { value: size }, size)); });
      return select;
    }
    var types = { email: "email", phone: "tel" };
    var auto = { email: "email", first_name: "given-name", last_name: "family-name", company: "organization",
      job_title: "organization-title", phone: "tel", country: "country" };
    return el("input", Object.assign(attrs, { type: types[field.name] || "text", autocomplete: auto[field.name] }));
  }

  function render(root, cfg, endpoint) {
    var prefix = "lv" + ++counter + "-";
    var form = el("form", { novalidate: true, "class": "lv-form", lang: cfg.lang });
    var status = el("div", { role: "status", "aria-live": "polite", "class": "lv-status" });
    var fields = [{ name: "email", required: true, label: cfg.strings["label.email"] }].concat(cfg.fields);
    var controls = {};
    fields.forEach(function (field) {
      var wrap = el("div", { "class": "lv-field" });
      var label = el("label", { "for": prefix + field.name }, field.label + (field.required ? " *" : ""));
      var control = input(prefix, field, cfg);
      var error = el("p", { id: prefix + field.name + "-error", "class": "lv-error", hidden: true });
      wrap.append(label, control, error);
      form.appendChild(wrap);
      controls[field.name] = { control: control, error: error };
    });
    var consent = el("fieldset", { "class": "lv-consent" });
    consent.appendChild(el("legend", {}, cfg.strings["form.consent"]));
    cfg.consents.forEach(function (c) {
      var box = el("input", { type: "checkbox", id: prefix + "consent-" + c.purpose, value: c.purpose, name: "consent" });
      var label = el("label", { "for": box.id });
      label.append(box, el("span", {}, c.text));
      var error = el("p", { id: box.id + "-error", "class": "lv-error", hidden: true });
      consent.append(label, error);
      controls["consent." + c.purpose] = { control: box, error: error };
    });
    var consentError = el("p", { "class": "lv-error", hidden: true });
    consent.appendChild(consentError);
    controls.consent = { control: consent, error: consentError };
    form.appendChild(consent);
    // Honeypot: invisible to people and screen readers, tempting to bots.
    var pot = el("div", { "class": "lv-hp", "aria-hidden": "true" });
    pot.appendChild(el("input", { name: "website", tabindex: "-1", autocomplete: "off" }));
    form.appendChild(pot);
    var button = el("button", { type: "submit" }, cfg.strings["form.submit"]);
    form.append(button, status);
    root.appendChild(form);
    var proof = cfg.challenge && window.crypto && crypto.subtle ? solve(cfg.challenge) : Promise.resolve("");

    function showErrors(errors) {
      Object.keys(controls).forEach(function (name) {
        var entry = controls[name];
        var message = errors[name];
        entry.error.hidden = !message;
        entry.error.textContent = message || "";
        if (message) {
          entry.control.setAttribute("aria-invalid", "true");
          entry.control.setAttribute("aria-describedby", entry.error.id || "");
        } else {
          entry.control.removeAttribute("aria-invalid");
        }
      });
      var first = fields.concat(cfg.consents.map(function (c) { return { name: "consent." + c.purpose }; }))
        .filter(function (f) { return errors[f.name]; })[0];
      if (first && controls[first.name].control.focus) controls[first.name].control.focus();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var payload = Object.assign(sourceOf(), {
        lang: cfg.lang, render_token: cfg.render_token, website: pot.firstChild.value,
        consent: cfg.consents.filter(function (c) { return controls["consent." + c.purpose].control.checked; })
          .map(function (c) { return c.purpose; })
      });
      fields.forEach(function (f) { if (controls[f.name].control.value) payload[f.name] = controls[f.name].control.value; });
      button.disabled = true;
      status.textContent = cfg.strings["form.sending"];
      proof.then(function (solution) {
        if (solution) payload.altcha = solution;
        return fetch(endpoint, { method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(payload) });
      }).then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; });
      }).then(function (result) {
        button.disabled = false;
        if (result.status === 200) {
          if (result.body.redirect) { location.href = result.body.redirect; return; }
          var thanks = el("p", { "class": "lv-thanks", role: "status", tabindex: "-1" }, result.body.message);
          root.replaceChild(thanks, form);
          thanks.focus();
          return;
        }
        showErrors(result.body.fields || {});
        status.textContent = result.body.error || cfg.strings["error.422"];
      }).catch(function () {
        button.disabled = false;
        status.textContent = cfg.strings["error.network"];
      });
    });
  }

  // Without its configuration the form has no translated texts: this one travels along
  // (the same texts as the catalogues' "The form could not be loaded.").
  var UNAVAILABLE = { en: "The form could not be loaded.", de: "Das Formular konnte nicht geladen werden." };
  function unavailable(lang) {
    return UNAVAILABLE[String(lang || navigator.language || "").toLowerCase().split("-")[0]] || UNAVAILABLE.en;
  }

  function mount(script) {
    if (script.getAttribute("data-leadvault-mounted")) return;
    script.setAttribute("data-leadvault-mounted", "1");
    var src = new URL(script.src, location.href);
    var base = src.origin;
    var formId = script.getAttribute("data-leadvault-form");
    var host = el("div", { "class": "leadvault-form", "data-form": formId });
    var target = script.getAttribute("data-target") && document.querySelector(script.getAttribute("data-target"));
    if (target) target.appendChild(host);
    else if (script.parentNode && script.parentNode !== document.head) script.parentNode.insertBefore(host, script.nextSibling);
    else document.body.appendChild(host);
    var root = host.attachShadow({ mode: "open" });
    root.appendChild(el("link", { rel: "stylesheet", href: src.href.replace(/widget\.js(\?.*)?$/, "widget.css") }));
    var endpoint = base + "/f/" + encodeURIComponent(formId);
    var lang = languageOf(script);
    fetch(endpoint + "/config" + (lang ? "?lang=" + encodeURIComponent(lang) : ""), { credentials: "omit" })
      .then(function (response) {
        if (!response.ok) throw new Error("config " + response.status);
        return response.json();
      })
      .then(function (cfg) { render(root, cfg, endpoint); })
      .catch(function () { root.appendChild(el("p", { "class": "lv-error", role: "alert" }, unavailable(lang))); });
    setUpTracking(base);
  }

  // leadvault.track(type, props): only with the token a lead received after
  // giving the tracking consent (kept in this site's own storage).
  function setUpTracking(base) {
    var api = (window.leadvault = window.leadvault || {});
    if (api.track) return;
    var match = /(?:^|[#&])lv_t=([^&]+)/.exec(location.hash);
    if (match) {
      try { localStorage.setItem(STORE, decodeURIComponent(match[1])); } catch (e) { /* storage off */ }
      history.replaceState(null, "", location.pathname + location.search);
    }
    api.track = function (type, properties) {
      var token = null;
      try { token = localStorage.getItem(STORE); } catch (e) { /* storage off */ }
      if (!token) return Promise.resolve(false);
      return fetch(base + "/api/v1/track", { method: "POST", credentials: "omit", keepalive: true,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: token, type: type, properties: properties || {} }) })
        .then(function (response) { return response.ok; }, function () { return false; });
    };
  }

  Array.prototype.forEach.call(document.querySelectorAll("script[data-leadvault-form]"), mount);
})();
