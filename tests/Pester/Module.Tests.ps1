#Requires -Version 7.4
# Tests of the built module, run by build.ps1 in a fresh `pwsh -NoProfile -NonInteractive`.
# $env:KTCONNECT_MODULE points at out/KtConnect/<version>/.

BeforeAll {
    $script:ModuleDir = $env:KTCONNECT_MODULE
    if (-not $script:ModuleDir) { throw 'KTCONNECT_MODULE is not set; run through ./build.ps1 -Task Pester.' }
    $script:Manifest = Join-Path $script:ModuleDir 'KtConnect.psd1'
    $script:Module = Import-Module $script:Manifest -Force -PassThru
}

AfterAll {
    Remove-Module KtConnect -Force -ErrorAction Ignore
}

Describe 'KtConnect module' {
    It 'has a valid manifest whose version matches the assemblies' {
        $info = Test-ModuleManifest -Path $script:Manifest
        $cmdlets = [Reflection.AssemblyName]::GetAssemblyName((Join-Path $script:ModuleDir 'KtConnect.Cmdlets.dll'))
        $engine = [Reflection.AssemblyName]::GetAssemblyName((Join-Path $script:ModuleDir 'Dependencies/KtConnect.Engine.dll'))
        $info.Version | Should -Be ([version]('{0}.{1}.{2}' -f $cmdlets.Version.Major, $cmdlets.Version.Minor, $cmdlets.Version.Build))
        $engine.Version | Should -Be $cmdlets.Version
    }

    It 'exports exactly the cmdlets the manifest lists' {
        $listed = (Import-PowerShellDataFile $script:Manifest).CmdletsToExport | Sort-Object
        $exported = $script:Module.ExportedCmdlets.Keys | Sort-Object
        ($exported -join ',') | Should -BeExactly ($listed -join ',')
    }

    It 'exports types that load before the engine can be resolved (what Import-Module enumerates first)' {
        # A fresh pwsh without the module: nothing answers for KtConnect.Engine, as during Import-Module before OnImport.
        $code = "`$a = [Reflection.Assembly]::LoadFrom('$(Join-Path $script:ModuleDir 'KtConnect.Cmdlets.dll')'); " +
            "`$a.GetExportedTypes() | ForEach-Object { `$_.GetProperties() | Out-Null; `$_.GetCustomAttributes(`$true) | Out-Null }; 'LOADED'"
        $out = & pwsh -NoProfile -NonInteractive -Command $code 2>&1
        ($out -join "`n") | Should -Match 'LOADED'
    }
}

Describe 'the private AssemblyLoadContext' {
    BeforeAll {
        $script:Kubeconfig = Join-Path ([IO.Path]::GetTempPath()) ("kt-alc-" + [guid]::NewGuid().ToString('N') + '.yaml')
        # Refused at once: the completer's cluster query fails fast and completion falls back to the file's namespaces.
        Set-Content -LiteralPath $script:Kubeconfig -Value @"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:1
users:
- name: u
  user:
    token: t
contexts:
- name: only
  context:
    cluster: c
    user: u
    namespace: alc-ns
current-context: only
"@
        $tools = if ($env:KT_TOOLS) { $env:KT_TOOLS } else { '/opt/kt-tools' }
        $script:OtherYaml = Get-ChildItem -Recurse -File -Filter YamlDotNet.dll -Path (Join-Path $tools 'packages/yamldotnet/11.2.1') -ErrorAction Ignore |
            Where-Object FullName -like '*netstandard2*' | Select-Object -First 1 -ExpandProperty FullName
        # Uses the engine (YAML kubeconfig, the completer's Kubernetes client and its logging abstractions), then reports
        # where every assembly from Dependencies/ was loaded.
        $script:UseModule = @"
Import-Module '$script:Manifest'
try { Connect-KtCluster -Mode Socks -Kubeconfig '$script:Kubeconfig' -Context nosuch } catch { "ERRORID `$(`$_.FullyQualifiedErrorId)" }
`$line = 'Connect-KtCluster -Kubeconfig $script:Kubeconfig -Namespace alc'
"COMPLETED " + ((TabExpansion2 -inputScript `$line -cursorColumn `$line.Length).CompletionMatches.CompletionText -join ',')
foreach (`$a in [AppDomain]::CurrentDomain.GetAssemblies()) {
    if (`$a.IsDynamic -or -not `$a.Location) { continue }
    "ASSEMBLY `$(`$a.GetName().Name) `$(`$a.GetName().Version) `$([Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$a).Name) `$(`$a.Location)"
}
"@
    }

    AfterAll {
        Remove-Item -LiteralPath $script:Kubeconfig -ErrorAction Ignore
    }

    It 'loads every assembly of Dependencies/ there and none into the default context' {
        $out = (& pwsh -NoProfile -NonInteractive -Command $script:UseModule 2>&1) -join "`n"
        $out | Should -Match 'ERRORID KubeContextNotFound,'
        $out | Should -Match 'COMPLETED alc-ns'
        $ours = @($out -split "`n" | Where-Object { $_ -match '^ASSEMBLY ' -and $_ -match '/Dependencies/' })
        $names = @($ours | ForEach-Object { ($_ -split ' ')[1] })
        $names | Should -Contain 'KtConnect.Engine'
        $names | Should -Contain 'YamlDotNet'
        $names | Should -Contain 'Microsoft.Extensions.Logging.Abstractions'
        foreach ($line in $ours) { $line | Should -Match '^ASSEMBLY \S+ \S+ KtConnect /' }
    }

    It 'works beside another module''s YamlDotNet loaded <When>' -ForEach @(
        @{ When = 'before it'; Before = $true }
        @{ When = 'after it'; Before = $false }
    ) {
        if (-not $script:OtherYaml) { throw 'YamlDotNet 11.2.1 is not installed (.ci/install-pwsh installs it)' }
        # Another module's YamlDotNet lives in the default context; both must work side by side.
        $other = "Add-Type -LiteralPath '$script:OtherYaml'; `$d = [YamlDotNet.Serialization.Deserializer]::new(); " +
            "'OTHER ' + `$d.Deserialize[hashtable]('a: 1').a + ' ' + [YamlDotNet.Serialization.Deserializer].Assembly.GetName().Version`n"
        $code = if ($Before) { $other + $script:UseModule } else { $script:UseModule + "`n" + $other }
        $out = (& pwsh -NoProfile -NonInteractive -Command $code 2>&1) -join "`n"
        $out | Should -Match 'OTHER 1 11\.'
        $out | Should -Match 'ERRORID KubeContextNotFound,'
        $out | Should -Match 'COMPLETED alc-ns'
        $out | Should -Match 'ASSEMBLY YamlDotNet 16\.\S+ KtConnect /\S+/Dependencies/YamlDotNet.dll'
    }
}
