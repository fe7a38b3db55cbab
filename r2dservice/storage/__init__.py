"""The parts of the build store, one job a module; `r2dservice.store` puts them together.

schema       the tables and BuildRecord
errors       what callers catch, and how a database error reads to people
database     URLs, engines, migrations at start
eventchunks  pure: a log's bound and its compressed chunks
queries      the reads (and the listing's cursor)
writes       the SQL of a batch of writes, in one transaction
writequeue   pure: the queue of writes waiting for the writer
pruning      deleting records past their retention
health       the probe: would a read, and a write, go through now?
"""
