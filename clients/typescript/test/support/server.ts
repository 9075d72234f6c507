// Starts the real `flashsale serve` for a test: free loopback ports, a temporary data dir,
// tokens passed by flags. The binary: $FLASHSALE_BIN, else $CARGO_TARGET_DIR/debug/flashsale,
// else the repository's target/debug/flashsale.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The admin token the tests configure. */
export const ADMIN = "ts-test-admin-token";
/** The storefront token the tests configure. */
export const SHOP = "ts-test-storefront-token";

/** The repository root (build/test/support → ../../../../..). */
const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../..");

/** The server binary the tests run. */
export function serverBinary(): string {
  if (process.env.FLASHSALE_BIN) return resolve(process.env.FLASHSALE_BIN);
  const target = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, "target");
  return join(target, "debug", "flashsale");
}

/** A running server. */
export class Server {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #stderr: string[];

  private constructor(url: string, child: ChildProcess, dir: string, stderr: string[]) {
    this.url = url;
    this.#child = child;
    this.#dir = dir;
    this.#stderr = stderr;
  }

  /** Starts a server with the test tokens and `extra` flags; resolves once it listens. */
  static async start(extra: string[] = []): Promise<Server> {
    const dir = await mkdtemp(join(tmpdir(), "flashsale-ts-"));
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith("FLASHSALE_") && k !== "RUST_LOG"),
    );
    env.FLASHSALE_LOG_LEVEL = "warn";
    const args = [
      "serve",
      ...["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"],
      ...["--data-dir", join(dir, "data")],
      ...["--shards", "2", "--no-pin-cores", "--expiry-tick-ms", "50", "--shutdown-grace-ms", "2000"],
      ...["--admin-token", ADMIN, "--storefront-token", SHOP],
      ...extra,
    ];
    const child = spawn(serverBinary(), args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const stderr: string[] = [];
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr.push(chunk);
      if (stderr.length > 200) stderr.shift(); // bounded
    });
    const lines = createInterface({ input: child.stdout! });
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`flashsale did not start within 30 s: ${stderr.join("")}`));
      }, 30_000);
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${serverBinary()}: ${e.message} (build it: cargo build -p flashsale-gateway --bin flashsale)`));
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`flashsale exited with ${code} before listening: ${stderr.join("")}`));
      });
      lines.on("line", (line) => {
        const addr = line.startsWith("http listening on ") ? line.slice("http listening on ".length).trim() : "";
        if (addr) {
          clearTimeout(timer);
          resolveUrl(`http://${addr}`);
        }
      });
    });
    child.removeAllListeners("exit");
    return new Server(url, child, dir, stderr);
  }

  /** What the server logged on stderr lately (for failure messages). */
  get stderr(): string {
    return this.#stderr.join("");
  }

  /** SIGTERM, waits for the exit (SIGKILL after 10 s), removes the data dir; the exit code. */
  async stop(): Promise<number | null> {
    const child = this.#child;
    let code: number | null = child.exitCode;
    if (code === null && child.signalCode === null) {
      code = await new Promise<number | null>((done) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", (c) => {
          clearTimeout(timer);
          done(c);
        });
        child.kill("SIGTERM");
      });
    }
    await rm(this.#dir, { recursive: true, force: true });
    return code;
  }
}
