// loopback.cjs — `node -r peers/loopback.cjs ...` preload that confines every TCP listener of
// the process to 127.0.0.1. The Portkey gateway has no host flag (@hono/node-server's
// `serve({fetch, port})` calls `server.listen(port)`, which binds all interfaces); this
// rewrites `net.Server.prototype.listen` (http.Server inherits it) before the gateway loads.
// A listen on a unix socket path or an fd handle is left alone; any TCP listen, whatever host
// it asked for, binds 127.0.0.1.
'use strict';
const net = require('net');

const LOOPBACK = '127.0.0.1';
const original = net.Server.prototype.listen;

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen(options[, cb]) — options.path (unix socket) and handles stay as they are.
    if (first.path === undefined && first.handle === undefined && first._handle === undefined &&
        first.fd === undefined) {
      args[0] = Object.assign({}, first, { host: LOOPBACK });
    }
  } else if (isPort(first) || first === undefined) {
    // listen([port[, host[, backlog]]][, cb]) — drop any host, insert loopback.
    const port = first === undefined ? 0 : first;
    const rest = args.slice(1);
    if (rest.length > 0 && typeof rest[0] === 'string') rest.shift(); // a host the caller gave
    args = [port, LOOPBACK, ...rest];
  }
  // else: listen(path) for a unix socket — not a network listener.
  return original.apply(this, args);
};

process.stderr.write(`loopback.cjs: TCP listeners of pid ${process.pid} confined to ${LOOPBACK}\n`);
