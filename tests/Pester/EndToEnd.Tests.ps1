#Requires -Version 7.4
# Every cmdlet driven as a user would, against KubeSim (the simulated cluster the xunit end-to-end tests use): a pwsh
# in the laptop network namespace imports the built module ($env:KTCONNECT_MODULE) and works with namespace `dev`:
# Deployment + Service `orders` (2 echo pods that answer with their pod's name, 80 -> 8080) and Deployment `client`,
# whose pod is where in-cluster requests come from. Linux and root only; skipped with the reason elsewhere.

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'SimCluster.psm1') -Force
    $script:KubeSimDll = $env:KTCONNECT_KUBESIM_DLL
    $script:Unsupported = Test-SimClusterSupport -KubeSimDll $script:KubeSimDll
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'SimCluster.psm1') -Force
    $script:Cluster = $null
    if (Test-SimClusterSupport -KubeSimDll $env:KTCONNECT_KUBESIM_DLL) { return }
    $script:Cluster = Start-SimCluster -KubeSimDll $env:KTCONNECT_KUBESIM_DLL
    Invoke-Kube $Cluster /api/v1/namespaces -Method POST -Body @{ apiVersion = 'v1'; kind = 'Namespace'; metadata = @{ name = 'dev' } } | Out-Null
    New-TestWorkload -Cluster $Cluster -Name orders -Replicas 2
    New-TestWorkload -Cluster $Cluster -Name client -NoService
    # Answers HTTP on the laptop's 127.0.0.1:8080 with a marker: where exchanged, meshed and previewed traffic must land.
    # A thread of the laptop pwsh itself, so it ends with that pwsh however the test ends it.
    $script:LocalServer = @'
$listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 8080)
$listener.Start()
$null = Start-ThreadJob -ArgumentList $listener {
    param($listener)
    $answer = [Text.Encoding]::ASCII.GetBytes("HTTP/1.1 200 OK`r`nContent-Type: text/plain`r`nContent-Length: 20`r`nConnection: close`r`n`r`nLOCAL-LAPTOP-ANSWER`n")
    while ($true) {
        # Polled, not a blocking accept: PowerShell stops this job when the pwsh exits, and a blocking call cannot stop.
        if (-not $listener.Pending()) { Start-Sleep -Milliseconds 20; continue }
        $client = $listener.AcceptTcpClient()
        try {
            $stream = $client.GetStream()
            $reader = [IO.StreamReader]::new($stream)
            while ($reader.ReadLine()) { }
            $stream.Write($answer, 0, $answer.Length)
        }
        catch { }
        finally { $client.Dispose() }
    }
}

'@
    $script:Baseline = Get-ClusterSnapshot $Cluster
    $script:Orders = 'http://orders.dev.svc.cluster.local/'
}

AfterAll {
    if ($script:Cluster) { Stop-SimCluster $script:Cluster }
}

Describe 'KtConnect against a simulated cluster' -Skip:([bool]$script:Unsupported) {
    AfterEach {
        Stop-LaptopPwsh $script:Pwsh
        $script:Pwsh = $null
        # A failed test must not fail the next ones: whatever it left is cleaned (its pwsh is dead by now).
        if ((Get-ClusterSnapshot $Cluster) -ne $Baseline) {
            Invoke-LaptopPwsh $Cluster 'Clear-KtResource -Namespace dev -Confirm:$false' | Out-Null
        }
    }

    Context 'Connect-KtCluster' {
        It 'reaches a Service by name through SOCKS5, and Get-KtSession | Stop-KtSession restores the cluster exactly' {
            $r = Invoke-LaptopPwsh $Cluster @'
$s = Connect-KtCluster -Namespace dev -Mode Socks -ProxyPort 2223
"STATE $($s.State) $($s.Kind) $($s.Mode)"
"BODY " + ((curl -sS --max-time 10 --socks5-hostname 127.0.0.1:2223 http://orders/) -join ' ')
Get-KtSession | Stop-KtSession
"LISTED $(@(Get-KtSession).Count) ENDED $(@(Get-KtSession -IncludeEnded | Where-Object State -eq Stopped).Count)"
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'STATE Running Connect Socks'
            $r.Output | Should -Match 'BODY pod: orders-'
            $r.Output | Should -Match 'LISTED 0 ENDED 1'
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }

        It 'reaches a Service by its cluster DNS name in tun mode, and stopping removes routes and DNS' {
            $laptop = Get-LaptopSnapshot $Cluster
            $r = Invoke-LaptopPwsh $Cluster @'
$s = Connect-KtCluster -Namespace dev
"STATE $($s.State) $($s.Mode)"
"ROUTES $($s.Routes -join ',')"
"BODY " + ((curl -sS --max-time 10 http://orders.dev.svc.cluster.local/) -join ' ')
$s | Stop-KtSession
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'STATE Running'
            $r.Output | Should -Match 'ROUTES \d+\.'
            $r.Output | Should -Match 'BODY pod: orders-'
            Get-LaptopSnapshot $Cluster | Should -Be $laptop
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'traffic from the cluster to this machine' {
        It 'Start-KtExchange sends every request of the Service to the local port until Stop-KtSession' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
"RUNNING $($s.Kind) $($s.State)"
Wait-Go
$s | Stop-KtSession
"STOPPED"
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING Exchange Running' | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' | Should -Match 'LOCAL-LAPTOP-ANSWER'
            Get-ClusterSnapshot $Cluster | Should -Not -Be $Baseline
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'pod: orders-' | Should -Match 'pod: orders-'
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }

        It 'Start-KtMesh sends only requests with the version header to the local port' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtMesh -Service orders -Namespace dev -Port 8080:80 -VersionMark v2
"RUNNING $($s.Kind) $($s.State) HEADER $($s.MeshHeader): $($s.MeshVersion)"
Wait-Go
Stop-KtSession -Id $s.Id
"STOPPED"
'@)
            $line = Wait-LaptopOutput $Pwsh 'RUNNING Mesh Running'
            $header = ($line -replace '^.*HEADER ', '').Trim()
            $header | Should -Match '^\S+: v2$'
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' -Header $header | Should -Match 'LOCAL-LAPTOP-ANSWER'
            Wait-ClusterAnswer $Cluster $Orders 'pod: orders-' | Should -Match 'pod: orders-'
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }

        It 'New-KtPreview serves a new Service from the local port and removes it on stop' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = New-KtPreview -Name orders-next -Namespace dev -Port 8080:80
"RUNNING $($s.Kind) $($s.State)"
Wait-Go
Get-KtSession | Stop-KtSession
"STOPPED"
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING Preview Running' | Out-Null
            Wait-ClusterAnswer $Cluster 'http://orders-next.dev.svc.cluster.local/' 'LOCAL-LAPTOP-ANSWER' | Should -Match 'LOCAL-LAPTOP-ANSWER'
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Invoke-Kube $Cluster /api/v1/namespaces/dev/services/orders-next -AllowMissing | Should -BeNullOrEmpty
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'the loss of a shadow pod' {
        It 'an exchange whose shadow pod is deleted gives the Service back, makes a new shadow and runs again' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
"RUNNING $($s.Id)"
Wait-Go
"STATE $((Get-KtSession -Id $s.Id).State)"
$s | Stop-KtSession
'STOPPED'
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING' | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' | Out-Null
            $shadowName = { @((Invoke-Kube $Cluster '/api/v1/namespaces/dev/pods?labelSelector=control-by%3Dkt').items |
                Where-Object { -not $_.metadata.PSObject.Properties['deletionTimestamp'] } | ForEach-Object { $_.metadata.name }) }
            $first = @(& $shadowName)
            $first.Count | Should -Be 1
            Invoke-Kube $Cluster "/api/v1/namespaces/dev/pods/$($first[0])" -Method DELETE | Out-Null
            Wait-Until -What 'a new shadow pod' -TimeoutSec 120 { $now = @(& $shadowName); $now.Count -eq 1 -and $now[0] -ne $first[0] } | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' -TimeoutSec 60 | Should -Match 'LOCAL-LAPTOP-ANSWER'
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STATE Running' | Out-Null
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'a Service with three ports' {
        BeforeAll {
            New-TestWorkload -Cluster $Cluster -Name multi -Port 80, 81, 82 -TargetPort 8080, 8081, 8082
            $script:MultiBaseline = Get-ClusterSnapshot $Cluster
            $script:MultiWorkloads = Get-ClusterSnapshot $Cluster -ExcludePods
        }

        AfterAll {
            Invoke-Kube $Cluster /api/v1/namespaces/dev/services/multi -Method DELETE | Out-Null
            Invoke-Kube $Cluster /apis/apps/v1/namespaces/dev/deployments/multi -Method DELETE | Out-Null
            Wait-Until -What 'the multi pods to go' { -not (Invoke-Kube $Cluster '/api/v1/namespaces/dev/pods?labelSelector=app%3Dmulti').items } | Out-Null
        }

        It 'exchanging one port keeps the other two reaching the workload, and the session lists every port' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service multi -Namespace dev -Port 8080:80
"RUNNING"
$s.Ports | ForEach-Object { "PORT $_" }
Wait-Go
$s | Stop-KtSession
'STOPPED'
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING' | Out-Null
            Wait-ClusterAnswer $Cluster 'http://multi.dev.svc.cluster.local:80/' 'LOCAL-LAPTOP-ANSWER' | Out-Null
            Wait-ClusterAnswer $Cluster 'http://multi.dev.svc.cluster.local:81/' 'port: 8081' | Should -Match 'pod: multi-'
            Wait-ClusterAnswer $Cluster 'http://multi.dev.svc.cluster.local:82/' 'port: 8082' | Should -Match 'pod: multi-'
            $ports = @((Get-LaptopOutput $Pwsh) -split "`n" | Where-Object { $_ -like 'PORT *' })
            $ports.Count | Should -Be 3
            ($ports -join "`n") | Should -Match '81.*relayed'
            ($ports -join "`n") | Should -Match '82.*relayed'
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Get-ClusterSnapshot $Cluster | Should -Be $MultiBaseline
        }

        It 'scale mode names the ports it would cut and refuses, unless -AllowPartial' {
            $r = Invoke-LaptopPwsh $Cluster ($LocalServer + @'
try { Start-KtExchange -Service multi -Namespace dev -Port 8080:80 -Mode Scale; 'NOERROR' } catch { "ERRORID $($_.FullyQualifiedErrorId) $($_.Exception.Message)" }
"SESSIONS $(@(Get-KtSession).Count)"
$s = Start-KtExchange -Service multi -Namespace dev -Port 8080:80 -Mode Scale -AllowPartial 3>&1 | ForEach-Object { if ($_ -is [Management.Automation.WarningRecord]) { "WARNING $_" } else { $_ } }
$session = $s | Where-Object { $_ -isnot [string] }
$s | Where-Object { $_ -is [string] }
"STATE $($session.State)"
$session.Ports | ForEach-Object { "PORT $_" }
$session | Stop-KtSession
'@)
            $r.Output | Should -Match 'ERRORID ExchangePortsUncovered,KtConnect.Cmdlets.StartKtExchangeCommand .*81'
            $r.Output | Should -Match 'SESSIONS 0'
            $r.Output | Should -Match 'WARNING '
            $r.Output | Should -Match 'STATE Running'
            $r.Output | Should -Match 'PORT .*81.*cut'
            # Scale mode recreates the pods by design: the Deployment, its replicas and the Service are what come back.
            Get-ClusterSnapshot $Cluster -ExcludePods | Should -Be $MultiWorkloads
        }
    }

    Context 'Start-KtForward and Wait-KtSession' {
        It 'Start-KtForward carries bytes from a local port to the Service''s pods, and Wait-KtSession sees it stop' {
            $r = Invoke-LaptopPwsh $Cluster @'
$s = Start-KtForward -Service orders -Namespace dev -Port 18080:80
"STATE $($s.State) PORTS $($s.LocalPorts -join ',')"
foreach ($i in 1..3) { "BODY$i " + ((curl -sS --max-time 10 http://127.0.0.1:18080/) -join ' ') }
$file = Join-Path ([IO.Path]::GetTempPath()) "kt-upload-$PID"
[IO.File]::WriteAllBytes($file, [byte[]]::new(1048576))
$big = curl -sS --max-time 30 -o /dev/null -w '%{http_code} %{size_upload}' --data-binary "@$file" http://127.0.0.1:18080/
Remove-Item -LiteralPath $file
"BIG $big"
"TIMEOUT $(@(Wait-KtSession -Id $s.Id -Timeout 1).Count)"
$job = Start-ThreadJob { param($id, $module) Import-Module $module; Start-Sleep -Milliseconds 500; Stop-KtSession -Id $id } -ArgumentList $s.Id, $Module
$done = Wait-KtSession -InputObject $s -Timeout 60
"WAITED $($done.State)"
$job | Wait-Job | Receive-Job
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'STATE Running PORTS'
            foreach ($i in 1..3) { $r.Output | Should -Match "BODY$i pod: orders-" }
            $r.Output | Should -Match 'BIG 200 1048576'
            $r.Output | Should -Match 'TIMEOUT 0'
            $r.Output | Should -Match 'WAITED Stopped'
        }

        It 'a missing Service is an error with its ErrorId, and the pipeline''s next Service is still forwarded' {
            $r = Invoke-LaptopPwsh $Cluster @'
try { Start-KtForward -Service nosuch -Namespace dev -Port 18081 ; 'NOERROR' } catch { "ERRORID $($_.FullyQualifiedErrorId)" }
"AFTER $(@(Get-KtSession -IncludeEnded | Where-Object State -ne 'Failed').Count)"
$s = [pscustomobject]@{ Service = 'nosuch' }, [pscustomobject]@{ Service = 'orders' } |
    Start-KtForward -Namespace dev -Port 18083:80 -ErrorAction SilentlyContinue -ErrorVariable errs
"PIPELINE $(@($s).Count) $($s.Target) $($s.State) ERRORS $($errs.Count) $($errs[0].FullyQualifiedErrorId)"
$s | Stop-KtSession
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'ERRORID \w+NotFound,'
            $r.Output | Should -Not -Match 'NOERROR'
            $r.Output | Should -Match 'AFTER 0'
            $r.Output | Should -Match 'PIPELINE 1 \S*orders\S* Running ERRORS 1 \w+NotFound,'
        }
    }

    Context '-WhatIf and -Confirm' {
        It '<Command> -WhatIf says what it would do and changes nothing' -ForEach @(
            @{ Command = 'Connect-KtCluster -Namespace dev -Mode Socks -ProxyPort 2224' }
            @{ Command = 'Start-KtExchange -Service orders -Namespace dev -Port 8080:80' }
            @{ Command = 'Start-KtMesh -Service orders -Namespace dev -Port 8080:80' }
            @{ Command = 'New-KtPreview -Name orders-next -Namespace dev -Port 8080' }
            @{ Command = 'Start-KtForward -Service orders -Namespace dev -Port 18082:80' }
        ) {
            $r = Invoke-LaptopPwsh $Cluster "`$out = $Command -WhatIf 6>&1 *>&1 | Out-String; `$out; 'SESSIONS ' + @(Get-KtSession -IncludeEnded).Count"
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'What if:'
            $r.Output | Should -Match 'SESSIONS 0'
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }

        It 'answering No to -Confirm changes nothing' {
            $script:Pwsh = Start-LaptopPwsh $Cluster -Interactive @'
Start-KtExchange -Service orders -Namespace dev -Port 8080:80 -Confirm
"SESSIONS $(@(Get-KtSession -IncludeEnded).Count)"
'@
            $Pwsh.Process.StandardInput.WriteLine('N')
            $Pwsh.Process.StandardInput.Close()
            Wait-LaptopExit $Pwsh | Out-Null
            Get-LaptopOutput $Pwsh | Should -Match 'Are you sure you want to perform this action\?'
            Get-LaptopOutput $Pwsh | Should -Match 'SESSIONS 0'
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'bad input' {
        It '<Name> is a terminating ErrorRecord <ErrorId> and changes nothing' -ForEach @(
            @{ Name = 'an unknown namespace'; Arguments = '-Namespace nosuch'; ErrorId = 'NamespaceNotFound' }
            @{ Name = 'an unknown context'; Arguments = '-Namespace dev -Context nosuch'; ErrorId = 'KubeContextNotFound' }
            @{ Name = 'a missing kubeconfig'; Arguments = '-Namespace dev -Kubeconfig /nonexistent/config'; ErrorId = 'KubeConfigNotFound' }
        ) {
            $r = Invoke-LaptopPwsh $Cluster @"
try { Connect-KtCluster -Mode Socks -ProxyPort 2225 $Arguments; 'NOERROR' }
catch { "ERRORID `$(`$_.FullyQualifiedErrorId) CATEGORY `$(`$_.CategoryInfo.Category)" }
"SESSIONS `$(@(Get-KtSession).Count)"
"ENDED `$(@(Get-KtSession -IncludeEnded | Where-Object State -ne Failed).Count)"
"@
            $r.Output | Should -Match "ERRORID $ErrorId,KtConnect.Cmdlets.ConnectKtClusterCommand"
            # A failed start is reported as the error, not listed as a session (Get-KtSession -IncludeEnded shows it Failed).
            $r.Output | Should -Match 'SESSIONS 0'
            $r.Output | Should -Match 'ENDED 0'
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'completion' {
        It 'completes namespaces and Services from the cluster' {
            $r = Invoke-LaptopPwsh $Cluster @'
$line = 'Connect-KtCluster -Namespace d'
"NS " + ((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText -join ',')
$line = 'Start-KtExchange -Namespace dev -Service o'
"SVC " + ((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText -join ',')
$line = 'Connect-KtCluster -Context kube'
"CTX " + ((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText -join ',')
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match '(?m)^NS (.*,)?dev(,|$)'
            $r.Output | Should -Match '(?m)^SVC orders$'
            $r.Output | Should -Match '(?m)^CTX kubesim$'
        }
    }

    Context 'Stop-KtSession' {
        It 'stopped with Ctrl+C, it returns and the stop goes on without waiting for the scale-mode pods' {
            # The Deployment's image cannot be pulled: its pods are never ready, so a stop that waits for them waits the
            # whole -RecoverWaitTime (600 s).
            New-TestWorkload -Cluster $Cluster -Name stall -Image 'unknown/missing:1.0' -NoWait
            try {
                $r = Invoke-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service stall -Namespace dev -Port 8080:80 -Mode Scale -RecoverWaitTime 600 -WarningAction SilentlyContinue
$job = Start-ThreadJob { param($id, $module) Import-Module $module; Stop-KtSession -Id $id -WarningAction SilentlyContinue } -ArgumentList $s.Id, $Module
$deadline = [DateTime]::UtcNow.AddSeconds(60)
while ((Get-KtSession -Id $s.Id).State -eq 'Running' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
"BEFORE $((Get-KtSession -Id $s.Id).State)"
# Stop-Job stops the thread's pipeline as Ctrl+C stops a console's.
$job | Stop-Job
$done = Wait-KtSession -InputObject $s -Timeout 60
"WAITED $($done.State)"
'@)
                $r.ExitCode | Should -Be 0 -Because $r.Errors
                $r.Output | Should -Match 'BEFORE Stopping'
                $r.Output | Should -Match 'WAITED Stopped'
                (Invoke-Kube $Cluster /apis/apps/v1/namespaces/dev/deployments/stall).spec.replicas | Should -Be 1
                (Invoke-Kube $Cluster '/api/v1/namespaces/dev/pods?labelSelector=kt-role%3Dshadow-exchange').items | Should -BeNullOrEmpty
            }
            finally {
                Invoke-Kube $Cluster /api/v1/namespaces/dev/services/stall -Method DELETE | Out-Null
                Invoke-Kube $Cluster /apis/apps/v1/namespaces/dev/deployments/stall -Method DELETE | Out-Null
                Wait-Until -What 'the stall pods to go' { -not (Invoke-Kube $Cluster '/api/v1/namespaces/dev/pods?labelSelector=app%3Dstall').items } | Out-Null
            }
        }
    }

    Context 'the end of a pwsh or of the module' {
        It '<How> stops and restores every session of the module' -ForEach @(
            @{ How = 'Remove-Module'; Ending = "Remove-Module KtConnect`n'REMOVED'`nWait-Go" }
            @{ How = 'exiting pwsh'; Ending = 'exit 0' }
            # What a CI agent or a supervisor sends; since .NET 10 it ends a process without ProcessExit unless handled.
            @{ How = 'SIGTERM to pwsh'; Ending = 'Wait-Go' }
        ) {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @"
`$null = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
`$null = Connect-KtCluster -Namespace dev -Mode Socks -ProxyPort 2226
'RUNNING'
Wait-Go
$Ending
"@)
            Wait-LaptopOutput $Pwsh 'RUNNING' | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' | Out-Null
            if ($How -eq 'SIGTERM to pwsh') {
                & kill -TERM $Pwsh.Process.Id
                Wait-LaptopExit $Pwsh | Out-Null
            }
            else { Send-LaptopGo $Pwsh }
            if ($How -eq 'Remove-Module') {
                Wait-LaptopOutput $Pwsh 'REMOVED' | Out-Null
                $Pwsh.Process.HasExited | Should -BeFalse
            }
            elseif ($How -eq 'exiting pwsh') {
                Wait-LaptopExit $Pwsh | Should -Be 0
            }
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
            Wait-ClusterAnswer $Cluster $Orders 'pod: orders-' | Should -Match 'pod: orders-'
        }
    }

    Context 'a live session' {
        It 'is never touched by Clear-KtResource -ThresholdMinutes 0 or Restore-KtService from another pwsh' {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$null = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
$null = Connect-KtCluster -Namespace dev -Mode Socks -ProxyPort 2227
'RUNNING'
Wait-Go
Get-KtSession | Stop-KtSession
'STOPPED'
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING' | Out-Null
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' | Out-Null
            $during = Get-ClusterSnapshot $Cluster
            $r = Invoke-LaptopPwsh $Cluster @'
Clear-KtResource -Namespace dev -ThresholdMinutes 0 -Confirm:$false 3>&1 | ForEach-Object { "CLEAR $_" }
try { Restore-KtService -Name orders -Namespace dev -Confirm:$false; 'NOERROR' } catch { "ERRORID $($_.FullyQualifiedErrorId)" }
'@
            $r.Output | Should -Match 'CLEAR kept: '
            $r.Output | Should -Match 'ERRORID RecoverServiceInUse,KtConnect.Cmdlets.RestoreKtServiceCommand'
            Get-ClusterSnapshot $Cluster | Should -Be $during
            Invoke-ClusterCurl $Cluster $Orders | Should -Match 'LOCAL-LAPTOP-ANSWER'
            Send-LaptopGo $Pwsh
            Wait-LaptopOutput $Pwsh 'STOPPED' | Out-Null
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }

    Context 'after a killed pwsh' {
        It '<Cleaner> undoes what the killed session left in the cluster' -ForEach @(
            @{ Cleaner = 'Clear-KtResource'; Command = 'Clear-KtResource -Namespace dev -Confirm:$false' }
            @{ Cleaner = 'Restore-KtService'; Command = 'Restore-KtService -Name orders -Namespace dev -Confirm:$false; Clear-KtResource -Namespace dev -Confirm:$false' }
        ) {
            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
"RUNNING $PID"
Wait-Go
'@)
            $line = Wait-LaptopOutput $Pwsh 'RUNNING \d+'
            Wait-ClusterAnswer $Cluster $Orders 'LOCAL-LAPTOP-ANSWER' | Out-Null
            # SIGKILL to PowerShell's own process (`ip netns exec` execs it, so this is `dotnet pwsh.dll`).
            [int]($line -replace '\D', '') | Should -Be $Pwsh.Process.Id
            $Pwsh.Process.Kill()
            $Pwsh.Process.WaitForExit()
            Get-ClusterSnapshot $Cluster | Should -Not -Be $Baseline
            $r = Invoke-LaptopPwsh $Cluster "$Command 6>&1 | Out-String"
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
            Wait-ClusterAnswer $Cluster $Orders 'pod: orders-' | Should -Match 'pod: orders-'
        }

        It 'Clear-KtResource and Restore-KtService say so when there is nothing to do, and -WhatIf lists each step once' {
            $r = Invoke-LaptopPwsh $Cluster @'
"CLEAR " + ((Clear-KtResource -Namespace dev -Confirm:$false 6>&1 | Out-String).Trim())
"RESTORE " + ((Restore-KtService -Name orders -Namespace dev -Confirm:$false 6>&1 | Out-String).Trim())
'@
            $r.ExitCode | Should -Be 0 -Because $r.Errors
            $r.Output | Should -Match 'CLEAR Nothing'
            $r.Output | Should -Match 'RESTORE Nothing'

            $script:Pwsh = Start-LaptopPwsh $Cluster ($LocalServer + @'
$s = Start-KtExchange -Service orders -Namespace dev -Port 8080:80
"RUNNING"
Wait-Go
'@)
            Wait-LaptopOutput $Pwsh 'RUNNING' | Out-Null
            $Pwsh.Process.Kill()
            $Pwsh.Process.WaitForExit()
            $r = Invoke-LaptopPwsh $Cluster 'Clear-KtResource -Namespace dev -ThresholdMinutes 0 -WhatIf *>&1 | Out-String'
            $lines = @($r.Output -split "`n" | Where-Object { $_ -match 'What if:' })
            $lines.Count | Should -BeGreaterThan 0
            ($lines | Sort-Object -Unique).Count | Should -Be $lines.Count
            @($lines | Where-Object { $_ -match 'selector' }).Count | Should -Be 1
            Get-ClusterSnapshot $Cluster | Should -Not -Be $Baseline
            Invoke-LaptopPwsh $Cluster 'Clear-KtResource -Namespace dev -Confirm:$false' | Out-Null
            Get-ClusterSnapshot $Cluster | Should -Be $Baseline
        }
    }
}
