"""Standardization of raw canonical records (see :mod:`mdm.standardize.pipeline`)."""
