"""Running as a service (docs/service.md): systemd's notify protocol and watchdog (``notify``),
the health and metrics endpoints (``http``, ``metrics``), the PAC's credits (``credits``) and
``service install`` (``install``: the systemd unit, WinSW's XML)."""
