#Requires -Version 7.4
<#
.SYNOPSIS
    Builds, lays out, tests and packages the KtConnect module.
.DESCRIPTION
    Plain PowerShell; needs only the .NET SDK. Microsoft.PowerShell.PlatyPS (help), Pester 5 (tests) and
    Microsoft.PowerShell.PSResourceGet (package) are used when installed and skipped with a message otherwise.

    Layout (out/KtConnect/<version>/):
      KtConnect.psd1, KtConnect.Format.ps1xml, KtConnect.Cmdlets.dll   module root
      en-US/                                                          about help, compiled cmdlet help
      Dependencies/                                                   KtConnect.Engine.dll and its dependencies
      Dependencies/runtimes/<rid>/native/                             native libraries (wintun.dll) when present
.EXAMPLE
    ./build.ps1                      # Build + Layout
.EXAMPLE
    ./build.ps1 -Task Test           # Build + Layout + xunit + Pester
.EXAMPLE
    ./build.ps1 -Task Pester         # Build + Layout + Pester only (what .ci/run uses after its own xunit run)
.EXAMPLE
    ./build.ps1 -Task Package -Configuration Release
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Pester', 'Package')]
    [string] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    [switch] $Clean
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$root = $PSScriptRoot
[xml] $props = Get-Content -LiteralPath (Join-Path $root 'Directory.Build.props')
$version = ($props.Project.PropertyGroup | Where-Object { $_['KtConnectVersion'] } | Select-Object -First 1).KtConnectVersion
if (-not $version) { throw 'KtConnectVersion is not set in Directory.Build.props.' }

$outRoot = Join-Path $root 'out'
$moduleDir = Join-Path $outRoot "KtConnect/$version"
$publishDir = Join-Path $outRoot 'publish'

# A simple function (no param block): every argument, -o and -c included, goes to dotnet as written.
function Invoke-Dotnet {
    & dotnet @args
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($args -join ' ') failed with exit code $LASTEXITCODE" }
}

function Copy-Required {
    param([string] $Source, [string] $Destination)
    if (-not (Test-Path -LiteralPath $Source)) { throw "Build did not produce the expected file '$Source'." }
    $null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $Destination)
    Copy-Item -LiteralPath $Source -Destination $Destination -Force
}

function Invoke-Build {
    if ($Clean -and (Test-Path $outRoot)) { Remove-Item -Recurse -Force $outRoot }
    Invoke-Dotnet build (Join-Path $root 'KtConnect.slnx') -c $Configuration -warnaserror -nologo
    Invoke-Dotnet publish (Join-Path $root 'src/Engine') -c $Configuration -o (Join-Path $publishDir 'engine') -nologo
    Invoke-Dotnet publish (Join-Path $root 'src/Cmdlets') -c $Configuration -o (Join-Path $publishDir 'cmdlets') -nologo
}

function Invoke-Layout {
    if (Test-Path $moduleDir) { Remove-Item -Recurse -Force $moduleDir }
    $null = New-Item -ItemType Directory -Force -Path $moduleDir

    $manifest = Get-Content -Raw -LiteralPath (Join-Path $root 'KtConnect.Module/KtConnect.psd1')
    $manifest.Replace('{{ModuleVersion}}', $version) | Set-Content -LiteralPath (Join-Path $moduleDir 'KtConnect.psd1') -Encoding utf8NoBOM
    Copy-Required (Join-Path $root 'KtConnect.Module/KtConnect.Format.ps1xml') (Join-Path $moduleDir 'KtConnect.Format.ps1xml')
    Copy-Required (Join-Path $root 'KtConnect.Module/en-US/about_KtConnect.help.txt') (Join-Path $moduleDir 'en-US/about_KtConnect.help.txt')
    Copy-Required (Join-Path $publishDir 'cmdlets/KtConnect.Cmdlets.dll') (Join-Path $moduleDir 'KtConnect.Cmdlets.dll')
    if ($Configuration -eq 'Debug') {
        Copy-Required (Join-Path $publishDir 'cmdlets/KtConnect.Cmdlets.pdb') (Join-Path $moduleDir 'KtConnect.Cmdlets.pdb')
    }

    # Dependencies: an explicit allow-list; a missing file fails the build.
    $deps = Get-Content -LiteralPath (Join-Path $root 'KtConnect.Module/Dependencies.txt') |
        Where-Object { $_ -and -not $_.StartsWith('#') }
    foreach ($dll in $deps) {
        Copy-Required (Join-Path $publishDir "engine/$dll") (Join-Path $moduleDir "Dependencies/$dll")
    }
    $nativeRoot = Join-Path $root 'native'
    if (Test-Path $nativeRoot) {
        Get-ChildItem -Recurse -File -LiteralPath $nativeRoot | ForEach-Object {
            $relative = [IO.Path]::GetRelativePath($nativeRoot, $_.FullName)
            Copy-Required $_.FullName (Join-Path $moduleDir "Dependencies/runtimes/$relative")
        }
    }

    Build-Help
    Write-Host "Module laid out in $moduleDir"
}

function Build-Help {
    $helpSource = Join-Path $root 'docs/help'
    $helpFile = Join-Path $moduleDir 'en-US/KtConnect.Cmdlets.dll-Help.xml'
    if (-not (Get-Module -ListAvailable Microsoft.PowerShell.PlatyPS)) {
        # Our own compiler (plain PowerShell): it fails on a page without synopsis, description, example or a
        # parameter's description, as PlatyPS's diagnostics do below.
        Write-Host 'Microsoft.PowerShell.PlatyPS is not installed: compiling cmdlet help with tools/ConvertTo-MamlHelp.ps1.'
        & (Join-Path $root 'tools/ConvertTo-MamlHelp.ps1') -Path $helpSource -OutputPath $helpFile | Out-Null
        return
    }
    Import-Module Microsoft.PowerShell.PlatyPS
    $commandHelp = Measure-PlatyPSMarkdown -Path (Join-Path $helpSource '*.md') |
        Where-Object Filetype -match 'CommandHelp' |
        Import-MarkdownCommandHelp -Path { $_.FilePath }
    $problems = $commandHelp.Diagnostics.Messages | Where-Object { $_.Severity -in 'Warning', 'Error' }
    if ($problems) { throw "Help has problems:`n$($problems | Out-String)" }
    $commandHelp | Export-MamlCommandHelp -OutputFolder (Join-Path $outRoot 'help') -Force | Out-Null
    Get-ChildItem -Recurse -Filter '*.xml' (Join-Path $outRoot 'help') |
        ForEach-Object { Copy-Required $_.FullName $helpFile }
}

function Invoke-Test {
    Invoke-Dotnet test (Join-Path $root 'KtConnect.slnx') -c $Configuration --no-build -nologo
    Invoke-Pester5
}

# Pester 5: $env:KT_PESTER (a Pester.psd1), else the one .ci/install-pwsh puts under $env:KT_TOOLS (/opt/kt-tools), else
# any Pester 5 on PSModulePath.
function Find-Pester5 {
    $tools = if ($env:KT_TOOLS) { $env:KT_TOOLS } else { '/opt/kt-tools' }
    foreach ($candidate in $env:KT_PESTER, (Join-Path $tools 'packages/pester/5.7.1/tools/Pester.psd1')) {
        if ($candidate -and (Test-Path -LiteralPath $candidate)) { return $candidate }
    }
    Get-Module -ListAvailable Pester | Where-Object Version -ge '5.0' | Sort-Object Version -Descending |
        Select-Object -First 1 -ExpandProperty Path
}

function Invoke-Pester5 {
    $pester = Find-Pester5
    if (-not $pester) {
        Write-Warning 'Pester 5 is not installed (.ci/install-pwsh installs it): tests/Pester were NOT run.'
        return
    }
    $summary = Join-Path $outRoot 'pester-summary.txt'
    Remove-Item -LiteralPath $summary -ErrorAction Ignore
    # A fresh, non-interactive pwsh so nothing from this session leaks into the module under test. The end-to-end
    # tests start the simulated cluster built with the solution.
    $env:KTCONNECT_MODULE = $moduleDir
    $env:KTCONNECT_KUBESIM_DLL = Join-Path $root "tests/KubeSim/bin/$Configuration/net10.0/KtConnect.KubeSim.dll"
    $script = "Import-Module '$pester'; " +
        "`$c = New-PesterConfiguration; `$c.Run.Path = '$(Join-Path $root 'tests/Pester')'; `$c.Run.PassThru = `$true; " +
        "`$c.Output.Verbosity = 'Detailed'; `$c.TestResult.Enabled = `$true; `$c.TestResult.OutputPath = '$(Join-Path $outRoot 'pester.xml')'; " +
        "`$r = Invoke-Pester -Configuration `$c; " +
        "Set-Content -LiteralPath '$summary' -Value ('{0} passed, {1} failed, {2} skipped' -f `$r.PassedCount, (`$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount), `$r.SkippedCount); " +
        "exit ([int](`$r.Result -ne 'Passed'))"
    & pwsh -NoProfile -NonInteractive -Command $script
    if ($LASTEXITCODE -ne 0) { throw "Pester failed with exit code $LASTEXITCODE" }
    Write-Host "Pester: $(Get-Content -LiteralPath $summary)"
}

function Invoke-Package {
    if (-not (Get-Command Publish-PSResource -ErrorAction Ignore)) {
        throw 'Microsoft.PowerShell.PSResourceGet is needed to package the module.'
    }
    $repoName = 'KtConnectBuild-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    $repoDir = Join-Path $outRoot 'package'
    $null = New-Item -ItemType Directory -Force -Path $repoDir
    Register-PSResourceRepository -Name $repoName -Uri $repoDir -Trusted
    try {
        Publish-PSResource -Path $moduleDir -Repository $repoName -SkipDependenciesCheck
        Write-Host "Package written to $repoDir"
    }
    finally {
        Unregister-PSResourceRepository -Name $repoName
    }
}

Invoke-Build
Invoke-Layout
switch ($Task) {
    'Test' { Invoke-Test }
    'Pester' { Invoke-Pester5 }
    'Package' { Invoke-Test; Invoke-Package }
}
