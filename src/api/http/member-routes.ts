import express, { type NextFunction, type Request, type Response } from "express";
import { ConfigError, formatAddress, idRule, isValidId, parseAddress } from "../../config.js";
import type { ConfigChange } from "../../raft/cluster-config.js";
import type { RaftNode } from "../../node/node.js";
import { BadRequestError } from "./coordination-routes.js";

/**
 * Membership and leadership administration: `GET /v1/members`, `POST /v1/members` `{id, address}` (add a
 * learner), `POST /v1/members/{id}/promote`, `DELETE /v1/members/{id}`, `POST /v1/cluster/transfer` `{id}`.
 * Changes answer once committed, with the membership after them.
 */
export function memberRouter(node: RaftNode): express.Router {
  const router = express.Router();
  const change = (build: (request: Request) => ConfigChange) => async (request: Request, response: Response, next: NextFunction) => {
    try {
      const { index } = await node.changeMembership(build(request));
      // This node applied the change (changeMembership waits for it): its own view includes it, and a
      // linearizable read could fail right after a removed leader stepped down.
      response.json({ ...node.localMembership(), committedIndex: index });
    } catch (error) {
      next(error);
    }
  };

  router.get("/v1/members", async (_request, response, next) => {
    try {
      response.json(await node.members());
    } catch (error) {
      next(error);
    }
  });
  router.post(
    "/v1/members",
    change((request) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      return { type: "add-learner", nodeId: memberId(body["id"]), address: peerAddress(body["address"]) };
    }),
  );
  router.post("/v1/members/:id/promote", change((request) => ({ type: "promote", nodeId: memberId(request.params["id"]) })));
  router.delete("/v1/members/:id", change((request) => ({ type: "remove", nodeId: memberId(request.params["id"]) })));
  router.post("/v1/cluster/transfer", async (request, response, next) => {
    try {
      const body = (request.body ?? {}) as Record<string, unknown>;
      response.json({ leader: await node.transferLeadership(memberId(body["id"])) });
    } catch (error) {
      next(error);
    }
  });
  return router;
}

function memberId(value: unknown): string {
  if (typeof value !== "string" || !isValidId(value)) throw new BadRequestError(`id must be a node id: ${idRule}`);
  return value;
}

/** A peer address in canonical `host:port` form. */
function peerAddress(value: unknown): string {
  if (typeof value !== "string") throw new BadRequestError("address must be the new member's peer address, host:port (its --peer-listen or --peer-advertise)");
  try {
    return formatAddress(parseAddress("address", value));
  } catch (error) {
    if (error instanceof ConfigError) throw new BadRequestError(error.message.replace(/^--/, ""));
    throw error;
  }
}
