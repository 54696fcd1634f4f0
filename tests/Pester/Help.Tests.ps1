#Requires -Version 7.4
# Cmdlet help of the built module (en-US/KtConnect.Cmdlets.dll-Help.xml, compiled from docs/help by build.ps1),
# run by build.ps1 in a fresh `pwsh -NoProfile -NonInteractive`. $env:KTCONNECT_MODULE points at out/KtConnect/<version>/.

BeforeDiscovery {
    if (-not $env:KTCONNECT_MODULE) { throw 'KTCONNECT_MODULE is not set; run through ./build.ps1 -Task Pester.' }
    $manifest = Import-PowerShellDataFile (Join-Path $env:KTCONNECT_MODULE 'KtConnect.psd1')
    $script:Cmdlets = @($manifest.CmdletsToExport | ForEach-Object { @{ Name = $_ } })
    if ($script:Cmdlets.Count -eq 0) { throw 'The manifest exports no cmdlet.' }
}

BeforeAll {
    $script:ModuleDir = $env:KTCONNECT_MODULE
    $script:Module = Import-Module (Join-Path $script:ModuleDir 'KtConnect.psd1') -Force -PassThru

    # The text of a help node (maml:para list, or a plain string), trimmed; '' when there is none.
    function Get-HelpText($Node) {
        $parts = foreach ($n in @($Node)) {
            if ($null -eq $n) { continue }
            if ($n -is [string]) { $n } elseif ($n.PSObject.Properties['Text']) { $n.Text } else { "$n" }
        }
        ($parts -join "`n").Trim()
    }
}

AfterAll {
    Remove-Module KtConnect -Force -ErrorAction Ignore
}

Describe 'KtConnect cmdlet help' {
    It 'ships the compiled help file' {
        Join-Path $script:ModuleDir 'en-US/KtConnect.Cmdlets.dll-Help.xml' | Should -Exist
    }

    Context '<Name>' -ForEach $script:Cmdlets {
        BeforeAll {
            $command = Get-Command -Name $Name -Module KtConnect -CommandType Cmdlet -ErrorAction Stop
            $help = Get-Help -Name $Name -Full -ErrorAction Stop
            # Common parameters are documented once, as <CommonParameters>; -WhatIf and -Confirm are the cmdlet's own.
            $parameters = @($command.Parameters.Keys |
                    Where-Object { $_ -notin [System.Management.Automation.Cmdlet]::CommonParameters } | Sort-Object)
        }

        It 'is exported' {
            $script:Module.ExportedCmdlets.Keys | Should -Contain $Name
        }

        It 'has a synopsis of its own (not the generated syntax)' {
            $synopsis = Get-HelpText $help.Synopsis
            $synopsis | Should -Not -BeNullOrEmpty
            # Without compiled help, Get-Help makes the synopsis from the syntax: "<Name> [-Param <type>] ...".
            $synopsis.StartsWith($Name, [StringComparison]::OrdinalIgnoreCase) | Should -BeFalse -Because "the synopsis was '$synopsis'"
            $synopsis | Should -Not -BeLike '*CommonParameters*'
        }

        It 'has a description' {
            Get-HelpText $help.description | Should -Not -BeNullOrEmpty
        }

        It 'has at least one example, each with code' {
            # Where-Object drops the $null that a help without examples gives (@($null).Count is 1).
            $examples = @($help.examples.example | Where-Object { $null -ne $_ })
            $examples.Count | Should -BeGreaterThan 0
            foreach ($e in $examples) {
                Get-HelpText $e.code | Should -Not -BeNullOrEmpty -Because "example '$(Get-HelpText $e.title)' needs code"
            }
        }

        It 'has a description for every parameter' {
            $parameters.Count | Should -BeGreaterThan 0
            $missing = foreach ($p in $parameters) {
                $ph = Get-Help -Name $Name -Parameter $p -ErrorAction SilentlyContinue
                if (-not $ph -or -not (Get-HelpText $ph.description)) { $p }
            }
            ($missing -join ', ') | Should -BeExactly '' -Because 'every parameter needs a description in docs/help'
        }

        It 'documents no parameter the cmdlet does not have' {
            $documented = @($help.parameters.parameter | Where-Object { $null -ne $_ } | ForEach-Object { "$($_.name)" })
            $extra = @($documented | Where-Object { $_ -notin $parameters })
            ($extra -join ', ') | Should -BeExactly ''
        }

        It 'documents -WhatIf and -Confirm when it supports ShouldProcess' {
            $supports = $command.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].SupportsShouldProcess
            $documented = @($help.parameters.parameter | Where-Object { $null -ne $_ } | ForEach-Object { "$($_.name)" })
            ('WhatIf' -in $documented) | Should -Be $supports
            ('Confirm' -in $documented) | Should -Be $supports
        }

        It 'states each parameter''s required, position and pipeline input as the cmdlet declares them' {
            $wrong = foreach ($p in $parameters) {
                $ph = Get-Help -Name $Name -Parameter $p -ErrorAction SilentlyContinue
                if (-not $ph) { continue }   # reported by the description test
                $meta = $command.Parameters[$p]
                $sets = @($meta.ParameterSets.Values)
                $required = @($sets | Where-Object { -not $_.IsMandatory }).Count -eq 0
                if ("$($ph.required)" -ne "$required".ToLowerInvariant()) { "-$p required '$($ph.required)' (is $required)" }
                $positions = @($sets | ForEach-Object { if ($_.Position -ge 0) { "$($_.Position)" } else { 'named' } })
                if ("$($ph.position)" -notin $positions) { "-$p position '$($ph.position)' (is $($positions -join '/'))" }
                $byValue = @($sets | Where-Object ValueFromPipeline).Count -gt 0
                $byName = @($sets | Where-Object ValueFromPipelineByPropertyName).Count -gt 0
                if (("$($ph.pipelineInput)" -match 'ByValue') -ne $byValue -or ("$($ph.pipelineInput)" -match 'ByPropertyName') -ne $byName) {
                    "-$p pipeline input '$($ph.pipelineInput)' (is ByValue=$byValue ByPropertyName=$byName)"
                }
                $wildcards = @($meta.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }).Count -gt 0
                if ("$($ph.globbing)" -ne "$wildcards".ToLowerInvariant()) { "-$p wildcards '$($ph.globbing)' (is $wildcards)" }
            }
            ($wrong -join '; ') | Should -BeExactly ''
        }
    }
}
