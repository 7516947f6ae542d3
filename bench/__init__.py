"""`make bench`: the platform's throughput, side by side with a bare Flask app on the same server.

Run `python -m bench --help` for the options. What gets measured is the table in `bench.suite`:
an HTTP endpoint is one `HttpEndpoint(...)` line, anything else (a function returning events/s)
is one `Throughput(...)` line with its own baseline entry. Absolute numbers drift between runs and
machines; the ratio to a baseline measured in the same run is the figure to compare.
"""
