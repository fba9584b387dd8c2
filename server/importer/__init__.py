"""The import engine: reading, parsing, writing, checkpoints.

file -> parse.py (a worker process: windows of the file; records.py parses their records)
     -> writer.py (a thread: COPY + upsert + checkpoint + NOTIFY, one transaction)
     -> engine.py (the coroutine that keeps both busy) -> runner.py (who runs what)
"""
