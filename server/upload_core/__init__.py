"""What every upload shares, whichever door it came through (multipart or tus).

errors.py   one error per HTTP status an upload can be refused with
body.py     reading a request body: its pace, its buffers, a client that went away
disk.py     the upload directory: a sink that writes, hashes and keeps the free-space
            floor; making a file durable and giving it its final name; sweeping
checks.py   what is checked before and after: header rules, names, room on disk

server/uploads.py (multipart) and server/tus/ (resumable) are adapters over
these pieces; neither imports the other.
"""
