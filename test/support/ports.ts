import { createServer } from "node:net";

/**
 * Ports are drawn below Linux's ephemeral range (32768-60999): a port the OS hands out for bind(0) can be
 * taken as the local port of some outgoing connection before the process meant to listen on it starts.
 */
const portLowest = 20_000;
const portHighest = 32_000;
const attemptsMax = 200;
const handedOut = new Set<number>();

/** A loopback port that is free now and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    const port = portLowest + Math.floor(Math.random() * (portHighest - portLowest));
    if (handedOut.has(port)) continue;
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free loopback port between ${portLowest} and ${portHighest} after ${attemptsMax} tries`);
}
