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
 * Data attributes on the button: data-attributes='{"first_name": "Ana"}',
 * data-tags="topic:space,stargazer". */
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
    if (options.id) body.id = options.id;
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
      body: JSON.stringify({ endpoint: sub.endpoint }),
    });
    return sub.unsubscribe();
  }

  function wire(element) {
    element.addEventListener("click", async (event) => {
      event.preventDefault();
      const options = {};
      if (element.dataset.attributes) options.attributes = JSON.parse(element.dataset.attributes);
      if (element.dataset.tags) options.tags = element.dataset.tags.split(",").map((t) => t.trim()).filter(Boolean);
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
