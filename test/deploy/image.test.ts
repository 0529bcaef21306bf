// The Dockerfile and .dockerignore, read as text (no Docker engine runs here): the image's defaults are
// real flags the node accepts, it exposes the ports it listens on, stops on SIGTERM as a non-root user,
// and its HEALTHCHECK command works against an HTTP server.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { envName, parseStartConfig, startFlags } from "../../src/config.js";
import { TestCa } from "../support/certs.js";
import { readRepoFile } from "./kubernetes.js";

interface Instruction {
  readonly keyword: string;
  readonly argument: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(): Instruction[] {
  const joined = readRepoFile("Dockerfile")
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const match = /^(\S+)\s+(.*)$/.exec(line.trim())!;
      return { keyword: match[1]!.toUpperCase(), argument: match[2]!.trim() };
    });
}

/** The runtime stage: the instructions after the last FROM. */
function runtimeStage(): Instruction[] {
  const all = instructions();
  const lastFrom = all.map((instruction) => instruction.keyword).lastIndexOf("FROM");
  return all.slice(lastFrom);
}

function imageEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { argument } of runtimeStage().filter((instruction) => instruction.keyword === "ENV")) {
    for (const match of argument.matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[match[1]!] = match[2]!;
  }
  return env;
}

function healthcheckCommand(): string[] {
  const healthcheck = runtimeStage().find((instruction) => instruction.keyword === "HEALTHCHECK");
  const exec = /CMD (\[.*\])$/.exec(healthcheck?.argument ?? "");
  if (exec === null) throw new Error("HEALTHCHECK has no exec-form CMD");
  return JSON.parse(exec[1]!) as string[];
}

function exitCodeOf(command: readonly string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, command.slice(1), { env, stdio: "ignore" });
    child.on("error", reject);
    child.on("exit", (code) => resolve(code));
  });
}

describe("Dockerfile", () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  it("builds on node:20-bookworm-slim and installs only production dependencies in the runtime stage", () => {
    const all = instructions();
    const froms = all.filter((instruction) => instruction.keyword === "FROM").map((instruction) => instruction.argument);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^node:20-bookworm-slim\b/);
    const runtimeRuns = runtimeStage().filter((instruction) => instruction.keyword === "RUN").map((instruction) => instruction.argument);
    expect(runtimeRuns.some((run) => run.includes("npm ci --omit=dev"))).toBe(true);
    expect(runtimeRuns.some((run) => /npm ci(?! --omit=dev)/.test(run))).toBe(false);
    expect(runtimeStage().some((instruction) => instruction.keyword === "COPY" && instruction.argument.startsWith("--from=build") && instruction.argument.includes("dist"))).toBe(true);
  });

  it("runs the package's bin as a numeric non-root user, stops on SIGTERM and keeps data in a volume", () => {
    const stage = runtimeStage();
    const single = (keyword: string): string => {
      const found = stage.filter((instruction) => instruction.keyword === keyword);
      expect(found, keyword).toHaveLength(1);
      return found[0]!.argument;
    };
    const bin = (JSON.parse(readRepoFile("package.json")) as { bin: { raftlock: string } }).bin.raftlock;
    const entrypoint = JSON.parse(single("ENTRYPOINT")) as string[];
    expect(entrypoint[0]).toBe("node");
    expect(entrypoint[1]!.endsWith(bin)).toBe(true);
    const user = single("USER");
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(":")[0])).toBeGreaterThan(0);
    expect(single("STOPSIGNAL")).toBe("SIGTERM");
    expect(single("VOLUME")).toBe(imageEnvironment()[envName("data-dir")]);
  });

  it("defaults to real flags, and exposes the ports it listens on", () => {
    const env = imageEnvironment();
    const flagEnv = new Set(startFlags.map((flag) => envName(flag.name)));
    for (const name of Object.keys(env).filter((key) => key.startsWith("RAFTLOCK_"))) expect(flagEnv, name).toContain(name);
    const exposed = runtimeStage()
      .filter((instruction) => instruction.keyword === "EXPOSE")
      .flatMap((instruction) => instruction.argument.split(/\s+/).map(Number));
    const config = parseStartConfig(["--id", "n1", "--peers", "n1=n1.example:7001"], env);
    expect(exposed.sort()).toEqual([config.peerListen.port, config.httpListen.port, config.respListen!.port].sort());
    expect(config.dataDir).toBe("/data");
  });

  it("has a HEALTHCHECK that passes while /healthz answers 200 and fails when nothing listens", async () => {
    const command = healthcheckCommand();
    expect(command[0]).toBe("node");
    server = createServer((request, response) => {
      response.writeHead(request.url === "/healthz" ? 200 : 404).end();
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    expect(await exitCodeOf(command, { RAFTLOCK_HTTP_LISTEN: `0.0.0.0:${port}` })).toBe(0);
    server.close();
    await new Promise((resolve) => server!.once("close", resolve));
    expect(await exitCodeOf(command, { RAFTLOCK_HTTP_LISTEN: `0.0.0.0:${port}` })).toBe(1);
  });

  it("has a HEALTHCHECK that asks over HTTPS when client TLS comes from the environment, presenting the node's certificate where clients must", async () => {
    const command = healthcheckCommand();
    const dir = mkdtempSync(join(tmpdir(), "raftlock-healthcheck-"));
    try {
      const ca = await TestCa.create(dir, "ca");
      const node = await ca.issue("node", "01");
      const tlsEnv = { RAFTLOCK_CLIENT_TLS_CERT: node.cert, RAFTLOCK_CLIENT_TLS_KEY: node.key };
      for (const requireClientCertificate of [false, true]) {
        const httpsServer = createHttpsServer(
          { cert: readFileSync(node.cert), key: readFileSync(node.key), ca: readFileSync(ca.cert), requestCert: requireClientCertificate, rejectUnauthorized: requireClientCertificate },
          (request, response) => response.writeHead(request.url === "/healthz" ? 200 : 404).end(),
        );
        await new Promise<void>((resolve) => httpsServer.listen(0, "127.0.0.1", resolve));
        const port = (httpsServer.address() as AddressInfo).port;
        const env = { RAFTLOCK_HTTP_LISTEN: `0.0.0.0:${port}`, ...tlsEnv, ...(requireClientCertificate ? { RAFTLOCK_CLIENT_TLS_CA: ca.cert } : {}) };
        try {
          expect(await exitCodeOf(command, env), `client certificates required: ${requireClientCertificate}`).toBe(0);
          // Plain HTTP against the HTTPS port fails, as the old check did.
          expect(await exitCodeOf(command, { RAFTLOCK_HTTP_LISTEN: `0.0.0.0:${port}` })).toBe(1);
        } finally {
          await new Promise((resolve) => httpsServer.close(resolve));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("sends the build only what it copies (.dockerignore)", () => {
    const rules = readRepoFile(".dockerignore")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(rules[0]).toBe("*");
    const included = new Set(rules.slice(1).map((rule) => rule.replace(/^!/, "").replace(/\/$/, "")));
    const copied = instructions()
      .filter((instruction) => instruction.keyword === "COPY" && !instruction.argument.startsWith("--from"))
      .flatMap((instruction) => instruction.argument.split(/\s+/).slice(0, -1));
    for (const source of copied) expect(included, `COPY ${source}`).toContain(source.replace(/\/$/, ""));
    for (const kept of ["node_modules", "dist", "data", ".git"]) expect(included).not.toContain(kept);
  });
});
