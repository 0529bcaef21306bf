// A RESP server on a free loopback port with the generic commands and a few test commands, and a raw
// socket client that sees the exact bytes.

import { connect, type Socket } from "node:net";
import { pino } from "pino";
import type { AuthLimits } from "../../../src/api/auth.js";
import { argument, type CommandSpec, type CommandTable, mergeCommandTables } from "../../../src/api/resp/command-table.js";
import { genericCommands } from "../../../src/api/resp/generic-commands.js";
import type { RespLimits } from "../../../src/api/resp/limits.js";
import { array, bulk, integer, map, nullBulk, ok, push, RespError } from "../../../src/api/resp/reply.js";
import { RespServer } from "../../../src/api/resp/server.js";
import type { NodeMetrics } from "../../../src/metrics.js";
import { waitFor } from "../../support/wait.js";

export type LogLine = Record<string, unknown> & { level: number; msg: string };

export { waitFor };

export interface TestServer {
  readonly server: RespServer;
  readonly port: number;
  /** Every log line the server wrote, parsed. */
  readonly logs: LogLine[];
  /** The commands (full names, `client|setinfo`) each client id ran, in order, as far as a handler was reached. */
  readonly commandsRun: Map<number, string[]>;
  /** How many times TEST.COUNT ran. */
  counted(): number;
  /** How many close hooks TEST.ONCLOSE registered have run. */
  closeHooksRun(): number;
  /** Lets every TEST.GATE waiting so far answer. */
  openGate(): void;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly limits?: Partial<RespLimits>;
  readonly authPassword?: string;
  readonly authReadOnlyPassword?: string;
  readonly authLimits?: AuthLimits;
  readonly nowMs?: () => number;
  /** Counts the server's limit hits, among others. */
  readonly metrics?: NodeMetrics;
  /** Served besides the generic and test commands (the pub/sub commands, say). */
  readonly commands?: CommandTable;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const logs: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  let count = 0;
  let closeHooksRun = 0;
  let gateWaiters: (() => void)[] = [];
  const testCommands = new Map<string, CommandSpec>([
    // TEST.SLOW ms value: answers value after ms, to show that replies keep request order.
    [
      "test.slow",
      {
        arity: 3,
        access: "read",
        handler: async (_ctx, args) => {
          await new Promise((resolve) => setTimeout(resolve, Number(argument(args, 1).toString())));
          return bulk(argument(args, 2));
        },
      },
    ],
    ["test.echo2", { arity: 3, access: "read", summary: "Answers its two arguments as an array.", group: "test", handler: (_ctx, args) => array([bulk(argument(args, 1)), bulk(argument(args, 2))]) }],
    ["test.count", { arity: 1, access: "read", handler: () => integer(++count) }],
    // TEST.WRITE: a command a read-only connection may not run.
    ["test.write", { arity: 1, access: "write", handler: () => ok }],
    // TEST.ONCLOSE keep|drop: registers a close hook, and with drop removes it again at once.
    [
      "test.onclose",
      {
        arity: 2,
        access: "read",
        handler: (ctx, args) => {
          const remove = ctx.onClose(() => closeHooksRun++);
          if (argument(args, 1).toString() === "drop") remove();
          return ok;
        },
      },
    ],
    ["test.gate", { arity: 1, access: "read", handler: () => new Promise((resolve) => gateWaiters.push(() => resolve(ok))) }],
    [
      "test.push",
      {
        arity: 2,
        access: "read",
        handler: (ctx, args) => {
          ctx.push(push([bulk("message"), bulk("test"), bulk(argument(args, 1))]));
          return ok;
        },
      },
    ],
    // TEST.FLOOD n bytes: pushes n messages of `bytes` bytes, as a busy channel would to a slow reader.
    [
      "test.flood",
      {
        arity: 3,
        access: "read",
        handler: (ctx, args) => {
          const payload = Buffer.alloc(Number(argument(args, 2).toString()), 0x78);
          for (let index = 0; index < Number(argument(args, 1).toString()); index++) ctx.push(push([bulk("message"), bulk("test"), bulk(payload)]));
          return ok;
        },
      },
    ],
    [
      "test.subscribe",
      {
        arity: 2,
        access: "read",
        allowedWhenSubscribed: true,
        handler: (ctx, args) => {
          ctx.subscriptions.add(argument(args, 1).toString());
          return push([bulk("subscribe"), bulk(argument(args, 1)), integer(ctx.subscriptions.size)]);
        },
      },
    ],
    [
      "test.types",
      {
        arity: 1,
        access: "read",
        handler: () =>
          map([
            ["nothing", nullBulk],
            ["yes", { type: "boolean", value: true }],
            ["ratio", { type: "double", value: 3.5 }],
            ["list", array([integer(1), bulk("two")])],
          ]),
      },
    ],
    [
      "test.fail",
      {
        arity: 1,
        access: "read",
        handler: () => {
          throw new Error("boom");
        },
      },
    ],
    [
      "test.refuse",
      {
        arity: 1,
        access: "read",
        handler: async () => {
          throw new RespError("NOLEADER", "no leader is elected yet; retry");
        },
      },
    ],
  ]);
  const commandsRun = new Map<number, string[]>();
  const commands = recording(mergeCommandTables(genericCommands, testCommands, options.commands ?? new Map()), commandsRun);
  const server = await RespServer.start({
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    commands,
    ...(options.authPassword === undefined ? {} : { authPassword: options.authPassword }),
    ...(options.authReadOnlyPassword === undefined ? {} : { authReadOnlyPassword: options.authReadOnlyPassword }),
    ...(options.authLimits === undefined ? {} : { authLimits: options.authLimits }),
    ...(options.nowMs === undefined ? {} : { nowMs: options.nowMs }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  return {
    server,
    port: server.address().port,
    logs,
    commandsRun,
    counted: () => count,
    closeHooksRun: () => closeHooksRun,
    openGate: () => {
      for (const open of gateWaiters) open();
      gateWaiters = [];
    },
    close: () => server.close(),
  };
}

/** `table` with every handler wrapped to record, per client id, the full names of the commands it ran. */
function recording(table: CommandTable, commandsRun: Map<number, string[]>, prefix = ""): CommandTable {
  const wrapped = new Map<string, CommandSpec>();
  for (const [name, spec] of table) {
    const handler = spec.handler;
    wrapped.set(name, {
      ...spec,
      ...(spec.subcommands === undefined ? {} : { subcommands: recording(spec.subcommands, commandsRun, `${name}|`) }),
      ...(handler === undefined
        ? {}
        : {
            handler: (ctx, args) => {
              const run = commandsRun.get(ctx.clientId) ?? [];
              run.push(prefix + name);
              commandsRun.set(ctx.clientId, run);
              return handler(ctx, args);
            },
          }),
    });
  }
  return wrapped;
}

/** A client on a plain socket: sends exact bytes and keeps everything it receives. */
export class RawClient {
  private bytes = Buffer.alloc(0);
  private isClosed = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new RawClient(socket);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Everything received so far, as text. */
  get received(): string {
    return this.bytes.toString("latin1");
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Waits until `text` has been received (anywhere in what came so far). */
  async receive(text: string, timeoutMs = 5_000): Promise<void> {
    await waitFor(`${JSON.stringify(text)} (received so far: ${JSON.stringify(this.received.slice(0, 2_000))})`, () => this.received.includes(text), timeoutMs);
  }

  /**
   * Sends `request` and returns what arrives after it, once as many bytes as `expected` has have come
   * (the caller compares: a wrong answer shows as a diff rather than a timeout).
   */
  async ask(request: string, expected: string, timeoutMs = 5_000): Promise<string> {
    const before = this.bytes.length;
    this.send(request);
    await waitFor(
      `an answer to ${JSON.stringify(request)} as long as ${JSON.stringify(expected)} (got ${JSON.stringify(this.bytes.subarray(before).toString("latin1"))})`,
      () => this.bytes.length - before >= expected.length || this.isClosed,
      timeoutMs,
    );
    return this.bytes.subarray(before).toString("latin1");
  }

  /** Sends `request` and returns what arrives after it, once that ends a line. */
  async askLine(request: string): Promise<string> {
    const before = this.bytes.length;
    this.send(request);
    await waitFor(`a line answering ${JSON.stringify(request)}`, () => this.bytes.length > before && this.received.endsWith("\r\n"));
    return this.bytes.subarray(before).toString("latin1");
  }

  /** Waits for the server to close the connection; fails after `timeoutMs`. */
  async waitClosed(timeoutMs = 5_000): Promise<void> {
    await waitFor("the server to close the connection", () => this.isClosed, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A request as a RESP array of bulk strings. */
export function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`;
}
