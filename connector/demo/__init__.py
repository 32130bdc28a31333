"""The ``demo`` command: a complete workspace with sample ERP exports and a local sandbox PAC.

``connector.demo.workspace`` builds the workspace and runs the daemon over it;
``connector.demo.erp`` holds the sample export files; ``connector/demo/csd`` SAT's test CSD.
"""
