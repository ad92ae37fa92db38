"""Agents and queues: callers wait in a flow's `queue` step, free agents' phones are dialled.

Interface for the agent console (ivr/web/console*.py) and anything else on the service side
------------------------------------------------------------------------------------------
The service (`ivr.service.service.Service`) always has:

- `service.agents`: an `AgentDirectory` (directory.py). Agents are the users of the users file
  (`cfg.auth.users_file`, `ivr users add NAME --role agent --sip sip:alice@127.0.0.1:5070`) that
  have a `sip` address; `service.agents.sync_users(users)` is called at start and whenever the
  console sees the users file change (cheap; call it on login). Statuses: available | ringing |
  on_call | wrap_up | away | offline. The console calls:
    * `service.agents.set_status(name, "available" | "away" | "offline")` (login = available,
      logout or a closed browser = offline). Only `MANUAL` statuses come from an agent; ringing,
      on_call and wrap_up are the service's. Going away/offline during a call applies when the
      call ends (the phone call is not cut). Bad moves raise `ivr.errors.UserError` (show it).
    * `service.agents.snapshot()` -> [{name, address, role, status, since_s, in_status_s, idle_s,
      call_id, node, misses, calls, wrap_up_left_s}] (the supervisor view; `node`: the node holding its call);
    * `service.agents.on_change(fn)`: `fn(agent_snapshot_dict)` after each status change (sync,
      quick; on the event loop or a worker thread: hop to the loop with call_soon_threadsafe).
- `service.queues`: a `QueueManager` (queues.py). The console calls:
    * `service.queues.snapshot()` -> {"queues": {name: [{call_id, queue, caller, caller_name, language,
      intent, reason, joined_at, waited_s, state, agent, node, position, estimated_wait_s}]},
      "callbacks": [{callback_id, call_id, number, queue, created_at, status, caller, language,
      reason, agent, updated_at, data}], "handle_s": {queue: seconds}};
    * `await service.queues.take_callback_async(callback_id, agent_name)` (a second agent taking the
      same task, on any node, gets UserError), `await service.queues.finish_callback_async(callback_id,
      agent_name, "done" | "failed")` (`take_callback` / `finish_callback`: the same, one node only);
    * `service.queues.on_change(fn)`: `fn(what, data)`, what in joined | left | offered | waiting |
      answered | callback.
- There is no "accept from the console": an agent accepts by answering the phone that rings
  (so two agents can never take the same call: only one phone rings for a call at a time; a
  phone answered just after the caller hung up gets a BYE and the agent is released).
- `service.dispatcher` (dispatch.py) pairs waiting calls with free agents and rings the phones;
  the console needs nothing from it (a status change to available wakes it up by itself).

Call events (ivr/callevents.py; subscribe with `service.hub.subscribe(fn)`), already redacted
by the hub's entrance filter:
- `QueueJoined` (queue, caller, caller_name, language, intent, reason, position, wait_s, context),
  `QueueLeft` (reason: answered | caller_hangup | timeout | empty | callback | out_of_hours | failed),
- `AgentRinging`: the screen pop, sent when the agent's phone starts ringing: agent, address,
  queue, caller, caller_name, language, intent, reason, waited_ms, attempt, slots (masked),
  transcript [{heard, said, sentiment, step}], path (steps visited), faq [{choice, score}], context
  (what went in X-IVR-Context);
- `AgentAnswered` (agent, queue, waited_ms, ring_ms), `AgentFailed` (agent, why: no_answer |
  rejected | busy | error | cancelled | taken), `CallbackRequested` (queue, number, callback_id),
- and the call's own `TurnEnded` / `CallEnded` (the transcript as it grows, the end).
The disposition and notes are the console's: store them with `service.store` (records db).

Several nodes (a PostgreSQL records database): `service.shared_agents` (shared.py) shares all of
the above through PostgreSQL; the directory and queues are then this node's mirror of every
node's agents and callers, so the calls above stay synchronous and quick (docs/cluster.md).
"""

from ivr.agents.callbacks import Callback, CallbackBook
from ivr.agents.directory import MANUAL, STATUSES, AgentDirectory
from ivr.agents.queues import QueueManager, WaitingCall

__all__ = ["MANUAL", "STATUSES", "AgentDirectory", "Callback", "CallbackBook", "QueueManager", "WaitingCall"]
