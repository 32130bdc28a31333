# Install cfdi-connector as a Windows service with NSSM (https://nssm.cc), no pywin32 needed.
# Run in an elevated PowerShell. Adjust the paths; the password variables are read by the
# connector through password_env (never write passwords in connector.toml).
#
#   .\install-service.ps1 -Config C:\cfdi-connector\connector.toml
param(
    [string]$Config = "C:\cfdi-connector\connector.toml",
    [string]$Exe = (Get-Command cfdi-connector.exe).Source,
    [string]$Name = "cfdi-connector",
    [string]$LogDir = "C:\cfdi-connector\logs"
)
$ErrorActionPreference = "Stop"
& $Exe check-config --config $Config
if ($LASTEXITCODE -ne 0) { throw "La configuración tiene errores; corríjalos antes de instalar el servicio." }
New-Item -ItemType Directory -Force -Path $LogDir | Out-Null
nssm install $Name $Exe run --config $Config
nssm set $Name DisplayName "cfdi-connector (CFDI 4.0)"
nssm set $Name Description "Convierte exportaciones del ERP en CFDI 4.0 timbrados por el PAC."
nssm set $Name AppDirectory (Split-Path $Config)
nssm set $Name AppStdout "$LogDir\service.out.log"
nssm set $Name AppStderr "$LogDir\service.err.log"
# Ctrl-C first (the connector stops taking files and finishes requests in flight), then wait.
nssm set $Name AppStopMethodConsole 60000
nssm set $Name AppExit Default Restart
nssm set $Name AppRestartDelay 5000
nssm set $Name Start SERVICE_AUTO_START
# Secrets for password_env, e.g.:
# nssm set $Name AppEnvironmentExtra CSD_PASSWORD=... PAC_PASSWORD=...
nssm start $Name
