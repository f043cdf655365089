"""``karborctl``: Karbor's own command-line client.

python-karborclient stays the compatibility client; this one knows our additions (live
progress, summaries, per-resource reasons, copies, scheduled-operation updates) and waits
for asynchronous operations so that scripts can trust its exit status.
"""
