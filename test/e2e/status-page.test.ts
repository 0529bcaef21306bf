import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

/** Generous: real processes and a browser on a loaded 2-core machine. */
const e2eTimeoutMs = 120_000;
/** Debian's package; CI installs it (.ci/run). */
const chromiumPath = "/usr/bin/chromium";
const chromiumArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
/** Long enough that the lock outlives the failover the test causes. */
const lockTtlMs = 60_000;

let cluster: E2eCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function getText(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() };
}

describe("status page", () => {
  it("GET / is one self-contained HTML page with no external URL, and /v1/locks lists the lock held", { timeout: e2eTimeoutMs }, async () => {
    cluster = await E2eCluster.start(1);
    await cluster.leader();
    const { httpPort } = cluster.node("n1");
    const page = await getText(httpPort, "/");
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.body).toContain("<table id=\"members\">");
    expect(page.body).not.toMatch(/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(page.body).not.toMatch(/https?:\/\//i);
    expect(page.body).not.toContain("innerHTML");

    expect((await cluster.post("n1", "/v1/locks/jobs/acquire", { owner: "worker-<b>1</b>", ttlMs: lockTtlMs })).status).toBe(200);
    const sessionId = (await cluster.post<{ id: number }>("n1", "/v1/sessions", { ttlMs: lockTtlMs, label: "batch" })).body.id;
    const locks = await cluster.get<{ locks: { name: string; owner: string; token: number; session: number | null; waiterCount: number }[]; truncated: boolean }>("n1", "/v1/locks");
    expect(locks.body.truncated).toBe(false);
    expect(locks.body.locks).toEqual([expect.objectContaining({ name: "jobs", owner: "worker-<b>1</b>", session: null, waiterCount: 0 })]);
    const sessions = await cluster.get<{ sessions: { id: number; label: string | null }[] }>("n1", "/v1/sessions");
    expect(sessions.body.sessions).toEqual([expect.objectContaining({ id: sessionId, label: "batch" })]);
  });

  it("with --auth-password the page still loads, and its lists need the bearer password", { timeout: e2eTimeoutMs }, async () => {
    cluster = await E2eCluster.start(1, [...fastTimeouts, "--auth-password", "s3cret"]);
    const { httpPort } = cluster.node("n1");
    await waitFor(async () => (await getText(httpPort, "/readyz")).status === 200, 15_000, "n1 ready");
    expect((await getText(httpPort, "/")).status).toBe(200);
    expect((await getText(httpPort, "/v1/locks")).status).toBe(401);
    expect((await getText(httpPort, "/v1/sessions")).status).toBe(401);
    expect((await getText(httpPort, "/v1/locks", { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await getText(httpPort, "/v1/sessions", { authorization: "Bearer s3cret" })).status).toBe(200);
  });

  it.skipIf(!existsSync(chromiumPath))(
    `headless Chromium shows the members, the lock holder and a new leader after the old one is killed (needs ${chromiumPath}: apt-get install chromium)`,
    { timeout: e2eTimeoutMs },
    async () => {
      cluster = await E2eCluster.start(3);
      await cluster.leader();
      expect((await cluster.post("n1", "/v1/locks/jobs/acquire", { owner: "worker-<i>1</i>", ttlMs: lockTtlMs })).status).toBe(200);
      // A second client queues behind the holder; its long poll may end with the failover, answered or not.
      void cluster.post("n1", "/v1/locks/jobs/acquire", { owner: "worker-2", ttlMs: lockTtlMs, waitMs: 60_000 }).catch(() => undefined);

      const screenshotDir = mkdtempSync(join(tmpdir(), "raftlock-status-page-"));
      // A fresh profile in the test's temp dir: nothing of another run's browser state is reused.
      const browser = await chromium.launchPersistentContext(join(screenshotDir, "profile"), { executablePath: chromiumPath, args: chromiumArgs });
      try {
        const page = await browser.newPage();
        const memberIds = () => page.$$eval("#members tbody tr td:first-child", (cells) => cells.map((cell) => cell.textContent));
        const leaderRows = () => page.$$eval("#members tbody tr.leader td:first-child", (cells) => cells.map((cell) => cell.textContent));
        const leaderOf = async (ids: string[]) => cluster!.leader(ids);
        // The page is served by a follower, so it stays up when the leader is killed; a loaded machine may
        // re-elect while Chromium starts, so the leader is read again until page and cluster agree.
        let first = await leaderOf(["n1", "n2", "n3"]);
        let viewer = ["n1", "n2", "n3"].find((id) => id !== first.id)!;
        await page.goto(`http://127.0.0.1:${cluster.node(viewer).httpPort}/`);
        await waitFor(async () => (await memberIds()).join(",") === "n1,n2,n3", 15_000, "the members table listing n1..n3");
        first = await waitFor(async () => {
          const agreed = await leaderOf(["n1", "n2", "n3"]);
          if (agreed.id === viewer) {
            viewer = ["n1", "n2", "n3"].find((id) => id !== agreed.id)!;
            await page.goto(`http://127.0.0.1:${cluster!.node(viewer).httpPort}/`);
            return undefined;
          }
          return (await leaderRows()).join(",") === agreed.id ? agreed : undefined;
        }, 20_000, "one leader row, the leader the cluster agrees on").catch(async (error: Error) => {
          throw new Error(`${error.message}; the members table: ${await page.innerHTML("#members")}; ${await page.textContent("#conn")}`);
        });
        // The owner name is shown as text: the markup in it is not interpreted.
        const lockRow = await waitFor(async () => {
          const cells = await page.$$eval("#locks tbody tr td", (tds) => tds.map((td) => td.textContent));
          return cells[0] === "jobs" ? cells : undefined;
        }, 15_000, "the lock jobs in the locks table");
        expect(lockRow[1]).toBe("worker-<i>1</i>");
        await waitFor(async () => (await page.textContent("#locks tbody tr td:nth-child(6)")) === "worker-2", 15_000, "worker-2 among the lock's waiters");
        expect(await page.$$("#locks i")).toHaveLength(0);
        await waitFor(async () => (await page.$$eval("#changes tbody td:nth-child(3)", (tds) => tds.map((td) => td.textContent))).includes(first.id), 15_000, "the first leader among the recent leader changes");

        await cluster.kill9(first.id);
        const running = [...cluster.nodes.keys()].filter((id) => id !== first.id);
        const second = await cluster.leader(running, 20_000, first.id);
        await waitFor(async () => (await page.textContent("#leader")) === second.id, 15_000, `the page naming ${second.id} the leader`);
        await waitFor(async () => (await leaderRows()).join(",") === second.id, 15_000, `the leader row moving to ${second.id}`);
        await waitFor(async () => (await page.$$eval("#changes tbody td:nth-child(3)", (tds) => tds.map((td) => td.textContent)))[0] === second.id, 15_000, "the new leader heading the recent leader changes (live from the watch stream)");
        await waitFor(async () => (await page.$$eval("#members tbody tr.down td:first-child", (cells) => cells.map((cell) => cell.textContent))).join(",") === first.id, 15_000, `${first.id} shown unreachable`);

        const screenshot = join(screenshotDir, "status-page.png");
        await page.screenshot({ path: screenshot, fullPage: true });
        console.log(`status page screenshot: ${screenshot}`);
      } finally {
        await browser.close();
      }
    },
  );

  it.skipIf(!existsSync(chromiumPath))("behind --auth-password the page asks for the password once and then lists what it shows", { timeout: e2eTimeoutMs }, async () => {
    cluster = await E2eCluster.start(1, [...fastTimeouts, "--auth-password", "s3cret"]);
    const { httpPort } = cluster.node("n1");
    await waitFor(async () => (await getText(httpPort, "/readyz")).status === 200, 15_000, "n1 ready");
    const profileDir = mkdtempSync(join(tmpdir(), "raftlock-status-page-auth-"));
    const browser = await chromium.launchPersistentContext(join(profileDir, "profile"), { executablePath: chromiumPath, args: chromiumArgs });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${httpPort}/`);
      await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
      expect(await page.textContent("#conn")).toContain("--auth-password");
      await page.fill("#password", "s3cret");
      await page.click("#auth button");
      await waitFor(async () => (await page.$$eval("#members tbody tr td:first-child", (cells) => cells.map((cell) => cell.textContent))).join(",") === "n1", 15_000, "the members table after the password was given");
      // The field is cleared once used: the password lives only in the tab's sessionStorage.
      expect(await page.inputValue("#password")).toBe("");
      expect(await page.isHidden("#auth")).toBe(true);
    } finally {
      await browser.close();
    }
  });
});
