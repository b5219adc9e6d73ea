// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core,
// with the flags that keep it from reaching hosts this machine cannot reach (NOTES.md), and a
// fresh profile per launch. Screenshots go to build/screenshots/ for a reviewer to look at.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO_ROOT } from './harness.mjs';

export const CHROMIUM = process.env.PUSHHOOK_CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(REPO_ROOT, 'build', 'screenshots');

const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--mute-audio',
];

// True when Chromium is installed; browser tests skip with a reason otherwise.
export function haveChromium() {
  return fs.existsSync(CHROMIUM);
}

// Launches Chromium and opens a context; the fixture closes it after the test.
// Returns {browser, context, page, errors}: `errors` collects the page's console errors,
// uncaught exceptions and CSP violations.
export async function openBrowser(fx, { viewport = { width: 1280, height: 900 } } = {}) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  fx.onCleanup(() => browser.close());
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  watchPage(page, errors);
  return { browser, context, page, errors };
}

export function watchPage(page, errors) {
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`exception: ${error.message}`));
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// The service worker registration of `scopeUrl`, as the DevTools protocol names it: needed to
// deliver a push message without a push service.
export async function serviceWorkerRegistration(session, scopeUrl, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no service worker registered for ${scopeUrl}`)), timeoutMs);
    session.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const found = registrations.find((r) => r.scopeURL === scopeUrl && !r.isDeleted);
      if (found) {
        clearTimeout(timer);
        resolve(found.registrationId);
      }
    });
    session.send('ServiceWorker.enable').catch(reject);
  });
}
