// A static file server for the example site, on 127.0.0.1 only:
//   node sdk/example/serve.mjs [port]      (default 8081), then open http://127.0.0.1:8081/example/
// It serves the sdk/ folder, so the page finds both the example and the SDK beside it. A page on
// http://127.0.0.1 is a secure context, where browsers allow service workers and notifications.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
};

// Serves `root` on 127.0.0.1:`port` (0: any free port); resolves to {url, port, close()}.
export function startStaticServer({ root = SDK_ROOT, port = 0 } = {}) {
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url, 'http://127.0.0.1').pathname);
    let file = path.normalize(path.join(root, urlPath));
    // Inside the folder, not beside it: "/..%2fsdk-x" resolves to a sibling whose name starts
    // with the folder's.
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (urlPath.endsWith('/')) file = path.join(file, 'index.html');
    fs.readFile(file, (error, body) => {
      if (error) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
        // The example page follows the rules the dashboard does: no inline script or style.
        'content-security-policy':
          "default-src 'self'; connect-src 'self' http://127.0.0.1:* http://localhost:* https:; img-src 'self' data:",
      });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const actual = server.address().port;
      resolve({
        port: actual,
        url: `http://127.0.0.1:${actual}`,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 8081);
  const { url } = await startStaticServer({ port });
  console.log(`example site: ${url}/example/  (Ctrl-C to stop)`);
}
