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

    It 'loads the engine into its own AssemblyLoadContext from Dependencies/' {
        $engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'KtConnect.Engine' }
        if ($engine) {
            [Runtime.Loader.AssemblyLoadContext]::GetLoadContext($engine).Name | Should -Be 'KtConnect'
            $engine.Location | Should -BeLike '*Dependencies*'
        }
        else {
            Set-ItResult -Skipped -Because 'no cmdlet has loaded the engine yet'
        }
    }
}
