// What the integration tests and the benchmark harness (bench/) both need of processes and
// ports on loopback, in one place: nothing here starts a server that outlives the call.
import net from 'node:net';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A port on 127.0.0.1 that nothing listened on a moment ago.
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// True when something already listens on host:port (or binding it is refused).
export async function portInUse(port, host = '127.0.0.1') {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', (err) => resolve(err.code !== 'EADDRNOTAVAIL' && err.code !== 'EAFNOSUPPORT'));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}
