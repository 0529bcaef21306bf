// Paths the router cannot decode, against a one-node cluster's real HTTP API.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OneNode, startOneNode } from "../../fuzz/http.js";

let node: OneNode;
beforeAll(async () => {
  node = await startOneNode();
}, 20_000);
afterAll(() => node.stop());

// Found by the fuzz tests (test/fuzz/http.ts): the router's URIError reached the generic error handler,
// which answered 500 INTERNAL and logged an error for a client's typo.
describe("HTTP API: a path parameter that is not valid percent-encoding", () => {
  for (const [method, route] of [
    ["GET", "/v1/locks/%ZZ"],
    ["POST", "/v1/locks/a%E0%A4%A/acquire"],
    ["GET", "/v1/fence/orders/%"],
    ["DELETE", "/v1/sessions/%C0"],
    ["POST", "/v1/members/%ZZ/promote"],
    ["DELETE", "/v1/members/%FF%"],
  ] as const) {
    it(`${method} ${route} is answered 400 with a JSON error naming the path`, async () => {
      const response = await fetch(`http://127.0.0.1:${node.port}${route}`, { method });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("BADREQUEST");
      expect(body.error.message).toMatch(/is not valid percent-encoding/);
    });
  }

  it("logs nothing at error level for them, and the same routes still work with a valid name", async () => {
    expect(node.errorLogs).toEqual([]);
    const response = await fetch(`http://127.0.0.1:${node.port}/v1/locks/%F0%9F%94%92`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: "NOTFOUND", message: "the lock is free" } });
  });
});
