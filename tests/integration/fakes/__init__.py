"""Named fakes of OpenStack services that cannot run in this environment (Manila, Trove).

See ``_base.py``: small real HTTP servers speaking the real REST API of the calls Karbor
makes, validating tokens against the test run's real Keystone.
"""
