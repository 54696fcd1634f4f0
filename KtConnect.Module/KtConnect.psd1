#
# Module manifest for KtConnect. build.ps1 replaces {{ModuleVersion}} with the version in
# Directory.Build.props, so the manifest and the assemblies always carry the same version.
#
@{
    RootModule           = 'KtConnect.Cmdlets.dll'
    ModuleVersion        = '{{ModuleVersion}}'
    CompatiblePSEditions = @('Core')
    GUID                 = '6f0d3c8e-5b7a-4d3e-9a51-2c4b8e7f1a90'
    Author               = 'KtConnect authors'
    CompanyName          = 'KtConnect'
    Copyright            = '(c) KtConnect authors. All rights reserved.'
    Description          = 'Join a Kubernetes namespace''s network from PowerShell and bring cluster traffic to local processes: connect, exchange, mesh, preview and forward, with every change undone on exit.'
    PowerShellVersion    = '7.4'
    FormatsToProcess     = @('KtConnect.Format.ps1xml')
    CmdletsToExport      = @(
        'Connect-KtCluster'
        'Start-KtExchange'
        'Start-KtMesh'
        'New-KtPreview'
        'Get-KtSession'
        'Stop-KtSession'
        'Wait-KtSession'
        'Start-KtForward'
        'Clear-KtResource'
        'Restore-KtService'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('PSEdition_Core', 'Windows', 'Linux', 'MacOS', 'Kubernetes', 'kt-connect', 'Networking', 'DevTools')
            ProjectUri   = 'https://github.com/ktconnect/ktconnect'
            LicenseUri   = 'https://github.com/ktconnect/ktconnect/blob/main/LICENSE'
            ReleaseNotes = 'See CHANGELOG.md.'
        }
    }
}
