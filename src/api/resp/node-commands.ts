// Every RESP command a node serves, in one table: what `raftlock start` dispatches on, and what the test
// that every command is classified as read or write walks.

import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import type { CoordinationService } from "../../node/coordination-service.js";
import type { RaftNode } from "../../node/node.js";
import { type CommandTable, mergeCommandTables } from "./command-table.js";
import { coordinationCommandTable } from "./coordination-commands.js";
import { genericCommands } from "./generic-commands.js";
import { memberCommandTable } from "./member-commands.js";
import { pubsubCommandTable } from "./pubsub-commands.js";
import { scriptCommandTable } from "./scripts.js";

/** The connection, coordination, membership, pub/sub and script commands of `node`. */
export function nodeCommandTable(service: CoordinationService, fsm: CoordinationStateMachine, node: RaftNode): CommandTable {
  return mergeCommandTables(genericCommands, coordinationCommandTable(service, fsm, node), memberCommandTable(node), pubsubCommandTable(fsm), scriptCommandTable(service));
}
