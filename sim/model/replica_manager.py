"""ReplicaManager's part of a broker: the replicas it hosts, as the KRaft metadata log moves them.

Applies committed metadata (ReplicaManager.applyDelta, via BrokerMetadataPublisher): fencing and
broker epochs, a reassignment's new and deleted replicas, leadership changes (makeLeaders /
makeFollowers, with the ReplicaFetcherManager's fetchers) and, before KIP-101, the truncation to the
high watermark of a new follower; the truncation a follower's fetch finds on divergence
(KIP-279/595); the leader's produce path (appendRecords, the produce purgatory of
`sim.model.partition`); the periodic ISR expiry and HW checkpoint; and the ISR upkeep a Partition
asks of its broker (isReplicaIsrEligible, AlterPartitionManager).

`ReplicaManager` is a base class of `Broker` (sim/model/broker.py), not an object of its own: its
state (replicas, fetchers, metadata, timeouts) is the broker process's memory, created and lost
with each incarnation (`Broker._reset_memory`), and it calls the broker's lifecycle (heartbeat,
controlled shutdown) when the metadata it applies concerns them. The leader side of fetching is
`sim.model.fetch_session.FetchManager`, an object the broker holds.
"""

from __future__ import annotations

import simpy

from sim.model import messages as m
from sim.model.disk import FlushPolicy
from sim.model.fetcher import ReplicaFetcher
from sim.model.log import Log
from sim.model.partition import DelayedProduce, Partition, PartitionSpec, purgatory_entry
from sim.model.timeouts import TimeoutQueue

__all__ = ["ReplicaManager"]


class ReplicaManager:
    """The broker's replicas: metadata application, leader and follower transitions, truncation,
    produce, ISR expiry and upkeep (kafka.server.ReplicaManager). A base class of `Broker`."""

    # --- metadata (the KRaft metadata log, applied) ------------------------------------------
    def apply_metadata(self, records: list, end_offset: int) -> None:
        """Apply committed metadata records: broker fencing and partition leadership/ISR."""
        self.metadata_offset = end_offset
        # Apply the batch as one delta (as a broker loads the metadata log): only the latest
        # state of each partition matters, so a restarted broker never replays old leaderships.
        latest: dict[int, m.PartitionRecord] = {}
        unfenced: list[int] = []
        for rec in records:
            # ("fence" | "unfence" | "controlled_shutdown", broker id) or ("register", broker id, epoch)
            if type(rec) is tuple:
                if rec[0] == "fence":
                    self.fenced.add(rec[1])
                elif rec[0] == "unfence":
                    self.fenced.discard(rec[1])
                    unfenced.append(rec[1])
                elif rec[0] == "register":
                    self.broker_epochs[rec[1]] = rec[2]
                    self.shutting_down_brokers.discard(rec[1])
                elif rec[0] == "controlled_shutdown":
                    self.shutting_down_brokers.add(rec[1])
            else:
                latest[rec.partition] = rec
        me = self.broker_id
        for rec in latest.values():
            self.metadata[rec.partition] = rec
            r = self.replicas.get(rec.partition)
            if r is None:
                if me not in rec.replicas:
                    continue
                r = self.create_replica(rec.partition)  # reassigned here
            elif me not in rec.replicas:
                self.delete_replica(r)  # reassigned away
                continue
            if rec.leader_epoch > r.leader_epoch:
                if rec.leader != me:
                    self.make_follower(r, rec, start_fetching=False)
                elif rec.leader_broker_epoch == self.incarnation:
                    self.make_leader(r, rec)
                else:
                    # Elected while our previous incarnation was alive: that leadership died with
                    # it (Kafka's controller has already moved it; here the election may still be
                    # queued). Wait, leaderless, for the next leader epoch.
                    self.make_follower(r, rec, start_fetching=False, leader=-1)
            else:
                r.apply_isr_record(rec)
        if unfenced:
            for r in self.replicas.values():
                if r.is_leader and any(x in r.remote and x not in r.isr for x in unfenced):
                    r.maybe_expand_isr()
        # One fetch per leader for all partitions this delta moved to it (addPartitions).
        for fetcher in self.fetchers.values():
            fetcher.maybe_fetch()
        if self.starting and self.metadata_offset >= self.registration_offset:
            # BrokerLifecycleManager: caught up past our registration, heartbeat at once to be
            # unfenced (rather than at the next periodic heartbeat).
            self.heartbeat()
        if self.shutting_down:
            self.request_shutdown(resend=False)  # caught up with the moves: ask again at once

    def create_replica(self, p: int) -> Partition:
        """A replica a reassignment adds here (ReplicaManager.applyDelta -> getOrCreatePartition): an empty
        log, then a follower that copies the leader's log from offset 0."""
        spec = self.partitions[p]
        self.disk.add_log(p, Log(), FlushPolicy(spec.flush_messages, spec.flush_ms,
                                                self.config.log_flush_scheduler_interval_ms))
        r = self.replicas[p] = Partition(self, spec, self.logs[p], self.effective_min_isr(spec))
        self.recorder.event(self.env.now, "replica_created", self.broker_id, p, 0)
        return r

    def delete_replica(self, r: Partition) -> None:
        """A replica a reassignment removed from here (ReplicaManager.stopPartitions with deletePartition):
        it stops following and its log is deleted."""
        p = r.spec.index
        if r.is_leader:
            r.fail_delayed_produce(m.NOT_LEADER_OR_FOLLOWER)
            self.wake_consumers(r)
        self._stop_following(r)
        leo = r.log.leo
        del self.replicas[p]
        self.out_of_isr.discard(p)
        self.disk.remove_log(p)
        self.recorder.event(self.env.now, "replica_deleted", self.broker_id, p, leo)

    def make_leader(self, r: Partition, rec: m.PartitionRecord) -> None:
        """Become leader in a new epoch (Partition.makeLeader)."""
        self._stop_following(r)
        now = self.env.now
        r.make_leader(rec, self.wall_ms())  # resetReplicaState: lastCaughtUpTimeMs on the wall clock
        self.recorder.event(now, "became_leader", self.broker_id, r.spec.index, rec.leader_epoch)
        self.track_isr(r)
        r.maybe_increment_hw()

    def track_isr(self, r: Partition) -> None:
        """Keep `out_of_isr` (partitions led here whose ISR lacks some replica) up to date."""
        if r.is_leader and len(r.isr) < len(r.replicas):
            self.out_of_isr.add(r.spec.index)
        else:
            self.out_of_isr.discard(r.spec.index)

    def make_follower(self, r: Partition, rec: m.PartitionRecord, start_fetching: bool = True,
                      leader: int | None = None) -> None:
        """Follow the new leader (Partition.makeFollower); truncation happens on first fetch.

        `leader` overrides the record's leader (-1: none to follow)."""
        leader = rec.leader if leader is None else leader
        if r.is_leader:
            r.fail_delayed_produce(m.NOT_LEADER_OR_FOLLOWER)
            self.mark_dirty(r, wake=True)  # parked fetches answer now: NOT_LEADER_OR_FOLLOWER
            self.wake_consumers(r)
        self._stop_following(r)
        r.make_follower(rec, leader)
        self.track_isr(r)
        if self.config.log_truncation == "high_watermark":
            self.truncate_to_high_watermark(r)
        if leader >= 0:
            fetcher = self.fetchers.get(leader)
            if fetcher is None:
                fetcher = self.fetchers[leader] = ReplicaFetcher(self, leader)
            fetcher.add_partition(r.spec.index)
            if start_fetching:
                fetcher.maybe_fetch()

    def _stop_following(self, r: Partition) -> None:
        fetcher = self.fetchers.get(r.leader_id)
        if fetcher is not None:
            fetcher.remove_partition(r.spec.index)

    def truncate_to_high_watermark(self, r: Partition) -> None:
        """Before KIP-101 (0.11), `log.truncation: high_watermark`: a replica that becomes a follower
        truncates its log to its own high watermark and fetches on from there (ReplicaManager.makeFollowers
        in 0.10: logManager.truncateTo(hw), KAFKA-551). Its HW lags the leader's by a fetch round, or
        comes from the HW checkpoint after a restart, so this can drop committed records; if it is then
        elected before fetching them again, they are lost (KIP-101 scenario 1)."""
        log = r.log
        target = min(log.hw, log.leo)
        if target >= log.leo:
            return
        removed = self.disk.truncate(r.spec.index, target)
        self.recorder.event(self.env.now, "truncation", self.broker_id, r.spec.index, target,
                            f"removed={removed} to its high watermark (log.truncation: high_watermark)", removed=removed)

    def truncate_on_divergence(self, r: Partition, leader_epoch: int, leader_end_offset: int) -> None:
        """KIP-279/595: truncate to the end of the last epoch both logs agree on."""
        log = r.log
        # our end of the largest epoch <= the leader's (unknown: -1, e.g. for leader_epoch -1)
        _, local_end = log.end_offset_for_epoch(leader_epoch)
        target = leader_end_offset if local_end < 0 else min(leader_end_offset, local_end)
        target = max(0, min(target, log.leo))
        removed = self.disk.truncate(r.spec.index, target)
        self.recorder.event(self.env.now, "truncation", self.broker_id, r.spec.index, target,
                            f"removed={removed} leader_epoch={leader_epoch} end_offset={leader_end_offset}",
                            removed=removed, leader_epoch=leader_epoch, end_offset=leader_end_offset)

    # --- the follower's fetchers (ReplicaFetcherManager): what they ask of their broker (FetcherHost) ---
    def next_session_id(self) -> int:
        """A new fetch session id; never reused, even by a later incarnation."""
        self._session_ids += 1
        return self._session_ids

    def broker_endpoint(self, broker_id: int) -> object:
        return self.cluster_brokers[broker_id]

    def _fetch_timed_out(self, req: m.FetchRequest) -> None:
        """replica.socket.timeout.ms passed without an answer: the fetcher closes its connection to the
        leader (ReplicaFetcherBlockingSend: NetworkClient.close), with what is still queued on it."""
        for leader, fetcher in self.fetchers.items():
            if fetcher.in_flight is req:
                self.connection_to(leader).close()
                fetcher.on_failure()

    # --- periodic processes (ReplicaManager.startup: isr-expiration, highwatermark-checkpoint) ---
    def expire_lagging_replicas(self):
        """Shrink the ISR of followers not caught up within replica.lag.time.max.ms.

        ReplicaManager schedules the check every lag/2, so a stuck follower leaves the ISR
        1.0-1.5x replica.lag.time.max.ms after it last caught up.
        """
        lag = self.config.replica_lag_time_max_ms
        try:
            while True:
                yield self.env.timeout(lag / 2)
                if self._paused is not None:
                    yield self.until_resumed()
                # The check runs on KafkaScheduler (monotonic), but compares the wall clock
                # (Partition.getOutOfSyncReplicas: time.milliseconds()) with lastCaughtUpTimeMs.
                now = self.wall_ms()
                for r in self.replicas.values():
                    r.maybe_shrink_isr(now)
        except simpy.Interrupt:
            return

    def checkpoint_high_watermarks(self):
        """Write every replica's HW to the checkpoint file (replica.high.watermark.checkpoint.interval.ms)."""
        try:
            while True:
                yield self.env.timeout(self.config.replica_high_watermark_checkpoint_interval_ms)
                if self._paused is not None:
                    yield self.until_resumed()
                for log in self.logs.values():
                    log.checkpointed_hw = log.hw
        except simpy.Interrupt:
            return

    # --- produce path (leader) ---------------------------------------------------------------
    def effective_min_isr(self, spec: PartitionSpec) -> int:
        # KAFKA-15583 (3.7): the min ISR is capped at the replication factor.
        if self.strict_min_isr:
            return min(spec.min_isr, len(spec.replicas))
        return spec.min_isr

    def handle_produce(self, req: m.ProduceRequest) -> None:
        """Append each batch on its partition leader; answer now (acks 0/1) or from purgatory."""
        now = self.env.now
        acks = req.acks
        results: list = [None] * len(req.batches)
        waiting = []
        touched = []
        replicas = self.replicas
        appended = self.recorder.appended
        for k, batch in enumerate(req.batches):
            r = replicas.get(batch.partition)
            if r is None or not r.is_leader:
                results[k] = (batch, m.NOT_LEADER_OR_FOLLOWER, -1)
                continue
            error, base, appended_now = r.append_records_to_leader(batch, acks)
            if error != m.NONE:
                results[k] = (batch, error, -1)
                continue
            if appended_now:
                appended(now, self.broker_id, batch.partition, base, batch.batch_id, r.leader_epoch)
                touched.append(r)
            if acks == -1 or acks >= 2:
                waiting.append((r, base + batch.record_count, k))
            else:
                results[k] = (batch, m.NONE, base)
        for r in touched:
            self.mark_dirty(r, wake=True)
            # Partition.appendRecordsToLeader: maybeIncrementLeaderHW after every leader append,
            # whatever the acks (the ISR may be just the leader: with RF 1 only this moves the HW).
            r.maybe_increment_hw()
        if acks == 0:
            # KafkaApis.handleProduceRequest: acks=0 gets no response; on any error the broker
            # closes the connection instead, so the client notices and refreshes its metadata.
            if any(res is not None and res[1] != m.NONE for res in results):
                self.network.close_connection(self, req.client)
            return
        if not waiting:
            self._respond_produce(req, results)
            return
        delayed = DelayedProduce(req, results, len(waiting), self._respond_produce)
        parked = []
        for r, required, k in waiting:
            r.watch_produce(purgatory_entry((required, delayed, k)), acks)
            if not parked or parked[-1] is not r:
                parked.append(r)
        # DelayedOperationPurgatory.tryCompleteElseWatch: try to complete before waiting. A retry
        # answered as a duplicate may already be below the HW; parked, it would wait for the next
        # HW advance, which never comes when every in-flight slot holds such a duplicate.
        for r in parked:
            r.try_complete_delayed_produce()
            r.check_legacy_waiters()
        if not delayed.done:
            tq = self.produce_timeouts.get(req.timeout_ms)
            if tq is None:
                tq = self.produce_timeouts[req.timeout_ms] = TimeoutQueue(self.env, req.timeout_ms,
                                                                          self.deferring(DelayedProduce.expire))
            delayed.timer = tq
            tq.add(delayed)

    def _respond_produce(self, req: m.ProduceRequest, results: list) -> None:
        self.network.send(self, req.client, m.ProduceResponse(req.request_id, self.broker_id, results),
                          32 * len(results))

    # --- ISR upkeep: what a Partition asks of its broker ----------------------------------------
    def isr_eligible(self, broker_id: int, broker_epoch: int | None = -1) -> bool:
        """Partition.isReplicaIsrEligible: an unfenced broker not in controlled shutdown (KIP-841) whose
        last fetch carried the broker epoch the metadata has for it (KIP-903, 3.5+: a new incarnation
        does not join on what its previous one fetched; `broker_epoch` None: no fetch yet, -1: not
        checked). ZooKeeper mode checks only that the broker is alive."""
        if broker_id in self.fenced:
            return False
        if self.zookeeper_mode:
            return True
        if broker_id in self.shutting_down_brokers or broker_epoch is None:
            return False
        return broker_epoch == -1 or broker_epoch == self.broker_epochs.get(broker_id, broker_epoch)

    def isr_broker_epochs(self, r: Partition, isr: tuple) -> dict:
        """KIP-903 NewIsrWithEpochs of an AlterPartition: each follower's epoch from its last fetch (-1: none)."""
        out = {}
        for b in isr:
            rr = r.remote.get(b)
            out[b] = rr.broker_epoch if rr is not None and rr.broker_epoch is not None else -1
        return out

    def send_alter_partition(self, r: Partition) -> None:
        """Send the partition's pending ISR to the controller (AlterPartitionManager)."""
        req = m.AlterPartition(self.next_request_id(), self.broker_id, self.incarnation, r.spec.index, r.leader_epoch,
                               r.partition_epoch, r.pending_isr, self.isr_broker_epochs(r, r.pending_isr))
        r.alter_in_flight = req
        self.alter_timeouts.add(req)
        if self.controller_connection().when_ready(self._to_controller):
            self.network.send(self, self.controller, req)
        else:
            self._alter_unsent.append(req)

    def _resend_alter_partitions(self) -> None:
        self._alter_resend_pending = False
        for r in self.replicas.values():
            if r.alter_in_flight is not None and r.is_leader and r.pending_isr is not None:
                self.alter_timeouts.done(r.alter_in_flight)
                self.send_alter_partition(r)

    def _alter_partition_timed_out(self, req: m.AlterPartition) -> None:
        """AlterPartitionManager: the request or its answer was lost; send the proposal again (a
        proposal the controller already applied is refused as stale, and the change itself
        arrives with the metadata log)."""
        r = self.replicas.get(req.partition)
        if r is not None and r.alter_in_flight is req and r.is_leader and r.pending_isr is not None:
            if req not in self._alter_unsent:
                self.controller_connection().close()  # NetworkClient: a timed-out request closes the connection
            self.send_alter_partition(r)

    def on_alter_partition_response(self, resp: m.AlterPartitionResponse) -> None:
        r = self.replicas.get(resp.partition)
        if r is None:
            return
        mine = r.alter_in_flight is not None and r.alter_in_flight.request_id == resp.request_id
        if mine:
            self.alter_timeouts.done(r.alter_in_flight)
            r.alter_in_flight = None
        rec = resp.record
        if resp.error != m.NONE or rec is None:
            if mine:
                r.pending_isr = None
            return
        r.apply_isr_record(rec)
