"""The real-cluster ground truth (issue 20): a scenario run on Apache Kafka itself, on this machine.

Beside `sim.runs`: it starts a KRaft controller and brokers as JVMs (`cluster`), runs Kafka's own
VerifiableProducer/VerifiableConsumer, applies the scenario's faults to the processes (`faults`,
`netfaults`), turns what the clients and a metadata poller printed into the simulator's facts
(`parse`) and measures them with the simulator's own checker and metrics (`run`), so that
`kafkasim versus` compares like with like (`versus`, `report`). Nothing here needs Java until a real
run starts; the simulator never imports it.
"""
