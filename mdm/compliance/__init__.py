"""Compliance self-check (PIPL, JR/T 0171, JR/T 0197): legal basis, retention, report, partner sharing.

Everything here reads the store's live state and the configuration as data; writes go through the store
(``mdm.store.compliance_repo``) or the erasure feature.
"""
