/* campaign-flow service worker: shows each push as a notification and opens its signed click link.
 * The payload is the JSON our sender encrypts (orchestrator/payload.py):
 * {title, body?, icon?, image?, badge?, tag?, actions?, requireInteraction?, silent?, timestamp?,
 *  data: {url: "<public url>/c/<token>", send: "<id>"}} */
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (err) {
    message = { title: event.data ? event.data.text() : "" };
  }
  const options = { data: message.data || {} };
  for (const key of ["body", "icon", "image", "badge", "tag", "actions", "requireInteraction", "silent", "timestamp"]) {
    if (message[key] !== undefined) options[key] = message[key];
  }
  if (options.tag) options.renotify = true;
  event.waitUntil(self.registration.showNotification(message.title || "", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  if (!data.url) return;
  const url = new URL(data.url);
  if (event.action) url.searchParams.set("a", event.action);
  event.waitUntil(self.clients.openWindow(url.href));
});
