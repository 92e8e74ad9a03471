/* campaign-flow subscribe snippet.
 *
 *   <script src="https://push.example.com/subscribe.js" defer></script>
 *   <button data-campaign-flow-subscribe>Get notified about new books</button>
 *
 * Permission is asked only when the visitor clicks an element marked
 * data-campaign-flow-subscribe (or when the site calls campaignFlow.subscribe()
 * after some engagement) — never on page load: browsers penalise sites that
 * prompt at once, and visitors say no. The subscription is posted with the
 * browser's timezone, so quiet hours follow the subscriber's own clock.
 *
 * Two modes (docs/web.md):
 * - anonymous: the service mints the subscriber id; the browser may set only what a
 *   subscriber may edit on their own profile page:
 *     data-attributes='{"first_name": "Ana"}'  data-tags="topic:space"
 * - the site's own id (an account id, an email): the site's backend computes the proof
 *   id_hash = hex HMAC-SHA256(identity key, id) and renders both into the page:
 *     data-id="account-42" data-id-hash="9f2c…"
 *   or calls campaignFlow.subscribe({id: "account-42", idHash: "9f2c…"}).
 *   Attributes and tags only the site knows (plan, consent, vip) are sent by the
 *   site's backend with the API key, never from the page. */
(function () {
  "use strict";
  const script = document.currentScript;
  const base = new URL(script ? script.src : "/subscribe.js", location.href).origin;
  const VAPID_PUBLIC_KEY = "__VAPID_PUBLIC_KEY__";

  function keyBytes(b64) {
    const padded = (b64 + "===".slice((b64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  async function registration() {
    return navigator.serviceWorker.register(base + "/sw.js", { scope: "/" });
  }

  async function subscribe(options) {
    options = options || {};
    if (!supported()) throw new Error("this browser cannot receive web push");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") return { subscribed: false, permission: permission };
    const reg = await registration();
    await navigator.serviceWorker.ready;
    const sub =
      (await reg.pushManager.getSubscription()) ||
      (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(VAPID_PUBLIC_KEY) }));
    const body = {
      subscription: sub.toJSON(),
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
    };
    if (options.id) {
      body.id = options.id;
      body.id_hash = options.idHash;
    }
    if (options.attributes) body.attributes = options.attributes;
    if (options.tags) body.tags = options.tags;
    const answer = await fetch(base + "/api/subscriptions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const result = await answer.json();
    if (!answer.ok) throw new Error(result.detail || "subscription refused");
    try {
      localStorage.setItem("campaignFlowProfile", result.profile_url);
    } catch (err) {
      /* private mode: the profile link is still in the result */
    }
    return { subscribed: true, id: result.id, profileUrl: result.profile_url };
  }

  async function unsubscribe() {
    if (!supported()) return false;
    const reg = await navigator.serviceWorker.getRegistration(base + "/sw.js");
    const sub = reg && (await reg.pushManager.getSubscription());
    if (!sub) return false;
    await fetch(base + "/api/subscriptions", {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(sub.toJSON()), // the keys prove this browser holds the subscription
    });
    return sub.unsubscribe();
  }

  function wire(element) {
    element.addEventListener("click", async (event) => {
      event.preventDefault();
      const options = {};
      if (element.dataset.attributes) options.attributes = JSON.parse(element.dataset.attributes);
      if (element.dataset.tags) options.tags = element.dataset.tags.split(",").map((t) => t.trim()).filter(Boolean);
      if (element.dataset.id) {
        options.id = element.dataset.id;
        options.idHash = element.dataset.idHash;
      }
      try {
        const result = await subscribe(options);
        element.dispatchEvent(new CustomEvent("campaign-flow:subscribed", { detail: result, bubbles: true }));
      } catch (err) {
        element.dispatchEvent(new CustomEvent("campaign-flow:error", { detail: String(err), bubbles: true }));
      }
    });
  }

  window.campaignFlow = { subscribe: subscribe, unsubscribe: unsubscribe, supported: supported, registration: registration };
  const ready = () => document.querySelectorAll("[data-campaign-flow-subscribe]").forEach(wire);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
