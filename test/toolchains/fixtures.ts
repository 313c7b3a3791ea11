/**
 * Test fixtures for packages: archives built at test time (tar package, the
 * system bzip2/xz/zstd CLIs, a tiny zip writer) and a loopback HTTP(S) server
 * with failure modes.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import * as tar from "tar";
import { tempDir, requireTool } from "../helpers/cli.js";

export type Tree = Record<string, string | { symlink: string }>;

export async function writeTreeWithLinks(root: string, tree: Tree): Promise<void> {
  for (const [rel, v] of Object.entries(tree)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    if (typeof v === "string") await writeFile(p, v, { mode: rel.startsWith("bin/") ? 0o755 : 0o644 });
    else await symlink(v.symlink, p);
  }
}

export function sha256(buf: Buffer): string {
  return createHash("sha256").update(buf).digest("hex");
}

export type Format = "tar" | "tar.gz" | "tar.bz2" | "tar.xz" | "tar.zst" | "zip";

/** Build an archive of `tree` under one top folder `top` (or none), in `format`. */
export async function makeArchive(format: Format, tree: Tree, top: string | undefined = "pkg-1.0"): Promise<Buffer> {
  const dir = await tempDir("kiln-fixture-");
  const src = join(dir, "src");
  await writeTreeWithLinks(top ? join(src, top) : src, tree);
  const entries = top ? [top] : Object.keys(tree).map((k) => k.split("/")[0]!).filter((v, i, a) => a.indexOf(v) === i);
  if (format === "zip") {
    requireTool("zip", "zip");
    execFileSync("zip", ["-q", "-r", "--symlinks", join(dir, "out.zip"), ...entries], { cwd: src });
    return readFile(join(dir, "out.zip"));
  }
  const plain = join(dir, "out.tar");
  await tar.create({ cwd: src, file: plain, portable: true }, entries);
  const tool: Record<string, [string, string, string]> = { "tar.bz2": ["bzip2", "bzip2", ".bz2"], "tar.xz": ["xz", "xz-utils", ".xz"], "tar.zst": ["zstd", "zstd", ".zst"], "tar.gz": ["gzip", "gzip", ".gz"] };
  if (format === "tar") return readFile(plain);
  const [cmd, deb, ext] = tool[format]!;
  requireTool(cmd, deb);
  execFileSync(cmd, cmd === "zstd" ? ["-q", plain] : ["-k", plain]);
  return readFile(plain + ext);
}

export interface RawTarEntry {
  path: string;
  type: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "FIFO";
  body?: string | Buffer;
  linkpath?: string;
  size?: number;
}

/** A tar written header by header, for archives the tar package refuses to make. */
export function rawTar(entries: RawTarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? "");
    const h = Buffer.alloc(512);
    new tar.Header({ path: e.path, mode: e.type === "Directory" ? 0o755 : 0o644, size: e.size ?? body.length, type: e.type, linkpath: e.linkpath ?? "", mtime: new Date(0), uid: 0, gid: 0, uname: "", gname: "" }).encode(h);
    blocks.push(h);
    if (body.length) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A stored (uncompressed) zip with raw names and optional unix modes, for hostile cases. */
export function rawZip(entries: Array<{ name: string; body: string; unixMode?: number }>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const body = Buffer.from(e.body);
    const crc = crc32(body);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(10, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(body.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(10, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(body.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.unixMode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

export type Mode = "ok" | "404" | "500" | "stall" | "truncate-once" | "truncate-always" | "500-once" | "slow";

export interface Route {
  body: Buffer;
  mode?: Mode;
  /** Honour Range requests (default true); "ignore" advertises them but answers every request with a 200. */
  ranges?: boolean | "ignore";
  /** Answer only once this path has been requested too (at most 3 s); `waited` says which came first. */
  waitFor?: string;
  waited?: "request" | "timeout";
}

export interface TestServer {
  url: string;
  requests: Array<{ path: string; range?: string | undefined }>;
  routes: Map<string, Route>;
  close(): Promise<void>;
}

function handler(routes: Map<string, Route>, requests: TestServer["requests"], hits: Map<string, number>) {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0]!;
    requests.push({ path, range: req.headers.range });
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    const route = routes.get(path);
    if (route?.waitFor) {
      const until = Date.now() + 3000;
      while (!requests.some((q) => q.path === route.waitFor) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      route.waited = requests.some((q) => q.path === route.waitFor) ? "request" : "timeout";
    }
    if (!route || route.mode === "404") {
      res.writeHead(404).end("not found");
      return;
    }
    const mode = route.mode ?? "ok";
    if (mode === "500" || (mode === "500-once" && n === 1)) {
      res.writeHead(500).end("boom");
      return;
    }
    let body = route.body;
    let status = 200;
    const headers: Record<string, string | number> = { "content-type": "application/octet-stream", etag: `"${sha256(body).slice(0, 16)}"` };
    if (route.ranges !== false) headers["accept-ranges"] = "bytes";
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (m && route.ranges !== false && route.ranges !== "ignore") {
      const start = Number(m[1]);
      headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
      body = body.subarray(start);
      status = 206;
    }
    headers["content-length"] = body.length;
    if (req.headers["if-none-match"] === headers.etag && status === 200) {
      res.writeHead(304, { etag: headers.etag as string }).end();
      return;
    }
    res.writeHead(status, headers);
    if (mode === "stall") {
      res.write(body.subarray(0, Math.min(1000, body.length)));
      return; // never ends; the client's inactivity timeout must fire
    }
    if ((mode === "truncate-once" && n === 1) || mode === "truncate-always") {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
      return;
    }
    if (mode === "slow") {
      let i = 0;
      const step = Math.max(1, Math.ceil(body.length / 50));
      const tick = (): void => {
        if (res.destroyed) return;
        if (i >= body.length) return void res.end();
        res.write(body.subarray(i, i + step));
        i += step;
        setTimeout(tick, 20);
      };
      tick();
      return;
    }
    res.end(body);
  };
  return (req: IncomingMessage, res: ServerResponse): void => void handle(req, res);
}

async function listen(server: Server, scheme: string, routes: Map<string, Route>, requests: TestServer["requests"]): Promise<TestServer> {
  // Longer than Node's 5 s, as CDNs keep connections: a kiln that leaves one open waits this long to exit.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    requests,
    routes,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

export async function startServer(routes: Record<string, Route> = {}): Promise<TestServer> {
  const map = new Map(Object.entries(routes));
  const requests: TestServer["requests"] = [];
  return listen(createServer(handler(map, requests, new Map())), "http", map, requests);
}

/** A throwaway CA and a 127.0.0.1 server certificate made with the openssl CLI. */
export async function makeCa(): Promise<{ caFile: string; key: Buffer; cert: Buffer }> {
  requireTool("openssl", "openssl");
  const dir = await tempDir("kiln-ca-");
  const run = (args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kiln test CA"]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
  await writeFile(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
  return { caFile: join(dir, "ca.pem"), key: await readFile(join(dir, "server.key")), cert: await readFile(join(dir, "server.pem")) };
}

export async function startHttpsServer(tls: { key: Buffer; cert: Buffer }, routes: Record<string, Route> = {}): Promise<TestServer> {
  const map = new Map(Object.entries(routes));
  const requests: TestServer["requests"] = [];
  return listen(createHttpsServer({ key: tls.key, cert: tls.cert }, handler(map, requests, new Map())) as unknown as Server, "https", map, requests);
}

/** A CONNECT proxy on 127.0.0.1, as corporate proxies are (hpagent tunnels http and https alike). */
export async function startConnectProxy(): Promise<{ url: string; tunnels: string[]; close(): Promise<void> }> {
  const { connect } = await import("node:net");
  const tunnels: string[] = [];
  // Tunnelled sockets leave the HTTP server's bookkeeping: close() must end them itself.
  const sockets = new Set<import("node:net").Socket>();
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on("connect", (req, client: import("node:net").Socket, head) => {
    tunnels.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    for (const sock of [client, upstream]) {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    }
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    tunnels,
    close: async () => {
      for (const sock of sockets) sock.destroy();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    },
  };
}
