// A tiny HTTP proxy in front of the server that injects faults per request: answer 503 (or any
// answer) without forwarding, forward but break the connection before answering, or forward
// and answer late. It records every request it saw.
import { createServer, request as httpRequest, type IncomingMessage, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";

/** A request as the proxy saw it. */
export interface Seen {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  body: string;
}

/** What to do with one request. */
export type Fault =
  | { kind: "forward" }
  | { kind: "answer"; status: number; body: unknown; headers?: Record<string, string> }
  | { kind: "drop-after-forward" }
  | { kind: "delay-after-forward"; delayMs: number };

/** Decides per request (its 0-based index and what it is). */
export type Plan = (index: number, seen: Seen) => Fault;

/** A running proxy. */
export class FaultProxy {
  readonly url: string;
  readonly seen: Seen[] = [];
  plan: Plan;
  readonly #server: HttpServer;

  private constructor(url: string, server: HttpServer, plan: Plan) {
    this.url = url;
    this.#server = server;
    this.plan = plan;
  }

  /** Starts on a free loopback port in front of `upstream` (`http://host:port`). */
  static async start(upstream: string, plan: Plan = () => ({ kind: "forward" })): Promise<FaultProxy> {
    const target = new URL(upstream);
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => {
      void readAll(req).then((body) => {
        const p = proxy!;
        const seen: Seen = {
          method: req.method ?? "GET",
          path: req.url ?? "/",
          idempotencyKey: header(req, "idempotency-key"),
          body,
        };
        const fault = p.plan(p.seen.length, seen);
        p.seen.push(seen);
        if (fault.kind === "answer") {
          const text = JSON.stringify(fault.body);
          res.writeHead(fault.status, { "content-type": "application/problem+json", ...fault.headers });
          res.end(text);
          return;
        }
        const up = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: target.host },
          },
          (upRes) => {
            void readAll(upRes).then((upBody) => {
              if (fault.kind === "drop-after-forward") {
                // The server did the work; the client never hears of it.
                res.socket?.destroy();
                return;
              }
              const send = () => {
                if (res.socket?.destroyed) return;
                res.writeHead(upRes.statusCode ?? 502, upRes.headers);
                res.end(upBody);
              };
              if (fault.kind === "delay-after-forward") setTimeout(send, fault.delayMs);
              else send();
            });
          },
        );
        up.on("error", () => res.socket?.destroy());
        up.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    proxy = new FaultProxy(`http://127.0.0.1:${port}`, server, plan);
    return proxy;
  }

  /** Closes the listener and every open connection. */
  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** A header's single value. */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The whole body as text (bounded: tests send small bodies). */
async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += b.length;
    if (size > 1 << 20) throw new Error("body above 1 MiB");
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}
