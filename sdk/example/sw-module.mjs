// The same worker as sw.js, as a module worker (registered with {type: 'module'}).
import { Pushhook } from '../pushhook-sw.mjs';

const params = new URL(self.location.href).searchParams;
if (params.get('endpoint') && params.get('key')) {
  Pushhook.init({
    endpoint: params.get('endpoint'),
    key: params.get('key'),
    dismiss: params.get('dismiss') === '1',
  });
}

self.addEventListener('push', (event) => {
  const message = event.data ? event.data.json() : {};
  event.waitUntil(Pushhook.show(message.title || 'pushhook', message.options || {}));
});
