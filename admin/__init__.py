"""The staff side: accounts, roles, the audit trail, the JSON admin API and the console.

The top layer (docs/ARCHITECTURE.md): it may use every package below it and
none imports it.
"""
