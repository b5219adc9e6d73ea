// The example page: registers the worker with the settings typed in, and asks it to show a
// test notification. The worker (sw.js) does the reporting.
const form = document.getElementById('setup');
const showButton = document.getElementById('show');
const status = document.getElementById('status');

function say(text) {
  status.textContent = text;
}

// One made-up subscriber per browser, so the example's events look like a real subscriber's.
function cookieId() {
  let id = localStorage.getItem('pushhook-example-cookie');
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem('pushhook-example-cookie', id);
  }
  return id;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!('serviceWorker' in navigator)) {
    say('This browser has no service workers.');
    return;
  }
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') {
    say(`Notifications are ${permission}: allow them for this page to try the example.`);
    return;
  }
  const params = new URLSearchParams({
    endpoint: form.endpoint.value,
    key: form.key.value,
    dismiss: form.dismiss.checked ? '1' : '0',
  });
  try {
    await navigator.serviceWorker.register(`sw.js?${params}`);
    await navigator.serviceWorker.ready;
    showButton.disabled = false;
    say('The worker is ready.');
  } catch (error) {
    say(`The worker could not be registered: ${error.message}`);
  }
});

showButton.addEventListener('click', async () => {
  const registration = await navigator.serviceWorker.ready;
  registration.active.postMessage({
    type: 'show',
    title: 'Your cart misses you',
    options: {
      body: 'The shoes you liked are back in stock.',
      actions: [{ action: 'buy', title: 'Buy now' }, { action: 'later', title: 'Later' }],
      data: {
        pushhook: {
          cid: 'example', reference_id: 'run-1', cookie_id: cookieId(),
          utm_source: 'pushhook', utm_medium: 'push_notifications', utm_campaign: 'example',
        },
      },
    },
  });
  say('Asked the worker to show a notification: its View goes to pushhook now.');
});
