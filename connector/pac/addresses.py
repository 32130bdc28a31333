"""Public service addresses the PAC layer knows (no imports: the configuration reads its
defaults from here without loading zeep)."""

# SAT's public CFDI status service (``sat_status``); ``[daemon] sat_status_url`` by default
SAT_STATUS_URL = "https://consultaqr.facturaelectronica.sat.gob.mx/ConsultaCFDIService.svc"
