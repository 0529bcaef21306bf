// raftlock/client: locks with fencing tokens and keepalive, elections and watches over RESP.
export {
  blockingReplyGraceMs,
  type Campaign,
  type CampaignCallbacks,
  type CampaignOptions,
  campaignWaitMsMax,
  type ElectionLeader,
  idempotentAttemptsMax,
  type LockHandle,
  type LockOptions,
  type RaftLeader,
  RaftlockClient,
  type RaftlockClientOptions,
  retryPauseMs,
  type Watch,
} from "./client.js";
export { connectTimeoutMsDefault, inflightRequestsMax, requestTimeoutMsDefault, type ReplyValue } from "./connection.js";
export { RaftlockError } from "./errors.js";
export { refreshIntervalMs, refreshIntervalMsMax, refreshIntervalMsMin, safetyMarginFraction, safetyMarginMs, safetyMarginMsMin } from "./keepalive.js";
export { resubscribeDelayMs, watchedChannelsMax } from "./subscriber.js";
