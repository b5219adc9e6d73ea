// The example's service worker: the SDK, configured from this script's own URL (the page
// registers it as sw.js?endpoint=…&key=…), and the two handlers a site writes.
importScripts('../pushhook-sw.js');

const params = new URL(self.location.href).searchParams;
if (params.get('endpoint') && params.get('key')) {
  Pushhook.init({
    endpoint: params.get('endpoint'),
    key: params.get('key'),
    dismiss: params.get('dismiss') === '1',
  });
}

// A push from the push service: {title, options} as the push backend sent it.
self.addEventListener('push', (event) => {
  const message = event.data ? event.data.json() : {};
  event.waitUntil(Pushhook.show(message.title || 'pushhook', message.options || {}));
});

// The page's "Show a test notification", and a nudge to send what is queued.
self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'show') {
    event.waitUntil(Pushhook.show(event.data.title, event.data.options));
  } else if (event.data && event.data.type === 'flush') {
    event.waitUntil(Pushhook.flush());
  }
});

// The site's own click handling: the SDK has reported the click already.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
});
