# Helpers for the Pester end-to-end tests: a KubeSim cluster (tests/KubeSim, the same world the xunit end-to-end tests
# use: pods are real processes in network namespaces, the laptop is a namespace that reaches only the API server),
# pwsh processes in the laptop that import the built module, REST calls to the API, in-cluster requests from a pod.
# Linux and root only; Test-SimClusterSupport says why not otherwise.

Set-StrictMode -Version 3.0

# The pwsh.dll this Pester run is hosted by: children run `dotnet <pwsh.dll>` directly, so the pid a test kills is
# PowerShell's own process, never a launcher shim's.
$script:PwshDll = [Reflection.Assembly]::GetEntryAssembly().Location

function Test-SimClusterSupport {
    <# Returns $null when the end-to-end tests can run here, else the reason they cannot. #>
    param([string] $KubeSimDll)
    if (-not $IsLinux) { return 'needs Linux (network namespaces)' }
    if ((id -u) -ne '0') { return 'needs root (network namespaces, tun)' }
    if (-not $KubeSimDll -or -not (Test-Path -LiteralPath $KubeSimDll)) { return "KubeSim is not built ($KubeSimDll)" }
    foreach ($p in 'ip', 'sshd', 'dnsmasq', 'nft', 'curl') {
        if (-not (Get-Command $p -ErrorAction Ignore) -and -not (Test-Path "/usr/sbin/$p")) { return "needs $p (.ci/install-deps)" }
    }
    return $null
}

function Wait-Until {
    <# Polls a condition until it holds or the deadline passes; throws naming what was awaited. #>
    param([Parameter(Mandatory)] [scriptblock] $Condition, [Parameter(Mandatory)] [string] $What, [int] $TimeoutSec = 60)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while ($true) {
        $value = & $Condition
        if ($value) { return $value }
        if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after $TimeoutSec s waiting for $What" }
        Start-Sleep -Milliseconds 200
    }
}

function Start-SimCluster {
    <# Starts `KtConnect.KubeSim start --with-node` and returns what the tests need to reach it. #>
    param([Parameter(Mandatory)] [string] $KubeSimDll)
    $state = Join-Path ([IO.Path]::GetTempPath()) ('ktsim-pester-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
    $null = New-Item -ItemType Directory -Path $state
    $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in $KubeSimDll, 'start', '--state', $state, '--with-node') { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $process = [Diagnostics.Process]::Start($psi)
    $null = $process.StandardError.ReadToEndAsync()
    $kubeconfigPath = $process.StandardOutput.ReadLineAsync()
    if (-not $kubeconfigPath.Wait([TimeSpan]::FromMinutes(2)) -or -not $kubeconfigPath.Result) {
        if (-not $process.HasExited) { $process.Kill($true) }
        throw "KubeSim did not start (state $state)"
    }
    $null = $process.StandardOutput.ReadToEndAsync()
    $text = Get-Content -Raw -LiteralPath $kubeconfigPath.Result
    $homeDir = Join-Path $state 'home'
    $null = New-Item -ItemType Directory -Path $homeDir
    [pscustomobject]@{
        State      = $state
        Process    = $process
        KubeSimDll = $KubeSimDll
        Kubeconfig = $kubeconfigPath.Result
        Laptop     = (Get-Content -LiteralPath (Join-Path $state 'laptop')).Trim()
        Server     = [regex]::Match($text, 'server:\s*(\S+)').Groups[1].Value
        Token      = [regex]::Match($text, 'token:\s*(\S+)').Groups[1].Value
        Home       = $homeDir
    }
}

function Stop-SimCluster {
    param([Parameter(Mandatory)] $Cluster)
    # `stop` signals the cluster, then removes whatever its state still lists (also after a crash).
    & dotnet $Cluster.KubeSimDll stop --state $Cluster.State | Out-Null
    if (-not $Cluster.Process.HasExited) { $Cluster.Process.Kill($true) }
    Remove-Item -Recurse -Force -LiteralPath $Cluster.State -ErrorAction Ignore
}

function Invoke-Kube {
    <# A REST call to the simulated API server as admin; returns the parsed body (or $null for 404 with -AllowMissing). #>
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [string] $Path, [string] $Method = 'GET', $Body,
        [string] $ContentType = 'application/json', [switch] $AllowMissing)
    $request = @{
        Uri = $Cluster.Server + $Path; Method = $Method; SkipCertificateCheck = $true
        Headers = @{ Authorization = 'Bearer ' + $Cluster.Token }
    }
    if ($null -ne $Body) {
        $request.Body = if ($Body -is [string]) { $Body } else { $Body | ConvertTo-Json -Depth 20 -Compress }
        $request.ContentType = $ContentType
    }
    try { Invoke-RestMethod @request }
    catch {
        if ($AllowMissing -and $_.Exception.Response -and [int]$_.Exception.Response.StatusCode -eq 404) { return $null }
        throw
    }
}

function New-TestWorkload {
    <#
    A Deployment running the echo image (it answers with its pod's name) and, unless -NoService, its Service; waits
    for its pods to be ready, unless -NoWait (an -Image that cannot be pulled, such as unknown/..., is never ready).
    #>
    param([Parameter(Mandatory)] $Cluster, [string] $Namespace = 'dev', [Parameter(Mandatory)] [string] $Name,
        [int] $Replicas = 1, [int[]] $Port = 80, [int[]] $TargetPort = 8080, [switch] $NoService,
        [string] $Image = 'ktconnect/echo:1.0', [switch] $NoWait)
    $labels = @{ app = $Name }
    $containerPorts = @(for ($i = 0; $i -lt $TargetPort.Count; $i++) { @{ containerPort = $TargetPort[$i]; name = "http$i" } })
    $servicePorts = @(for ($i = 0; $i -lt $Port.Count; $i++) { @{ name = "http$i"; port = $Port[$i]; targetPort = $TargetPort[$i] } })
    Invoke-Kube $Cluster "/apis/apps/v1/namespaces/$Namespace/deployments" -Method POST -Body @{
        apiVersion = 'apps/v1'; kind = 'Deployment'; metadata = @{ name = $Name; labels = $labels }
        spec = @{
            replicas = $Replicas; selector = @{ matchLabels = $labels }
            template = @{ metadata = @{ labels = $labels }; spec = @{ containers = @(@{ name = $Name; image = $Image; ports = $containerPorts }) } }
        }
    } | Out-Null
    if (-not $NoService) {
        Invoke-Kube $Cluster "/api/v1/namespaces/$Namespace/services" -Method POST -Body @{
            apiVersion = 'v1'; kind = 'Service'; metadata = @{ name = $Name }
            spec = @{ selector = $labels; ports = $servicePorts }
        } | Out-Null
    }
    if ($NoWait) { return }
    Wait-Until -What "deployment $Namespace/$Name ready" -TimeoutSec 120 {
        $d = Invoke-Kube $Cluster "/apis/apps/v1/namespaces/$Namespace/deployments/$Name"
        $d.status.PSObject.Properties['readyReplicas'] -and $d.status.readyReplicas -eq $Replicas
    } | Out-Null
}

function ConvertTo-Canonical {
    <# Objects with their properties sorted by name, so two equal objects give the same JSON whatever their key order. #>
    param($Value)
    if ($null -eq $Value) { return $null }
    if ($Value -is [string] -or $Value -is [ValueType]) { return $Value }
    if ($Value -is [Collections.IDictionary]) {
        $sorted = [ordered]@{}
        foreach ($k in $Value.Keys | Sort-Object) { $sorted[$k] = ConvertTo-Canonical $Value[$k] }
        return $sorted
    }
    if ($Value -is [Collections.IEnumerable]) { return , @($Value | ForEach-Object { ConvertTo-Canonical $_ }) }
    $sorted = [ordered]@{}
    foreach ($p in $Value.PSObject.Properties | Sort-Object Name) { $sorted[$p.Name] = ConvertTo-Canonical $p.Value }
    $sorted
}

function Get-ClusterSnapshot {
    <#
    What a user would compare before and after: every pod, Service, Deployment and ConfigMap of the namespace with its
    labels, annotations, selector, ports and replicas (not resourceVersions, timestamps or statuses). -ExcludePods
    for a change that recreates pods by design (a scale exchange: the Deployment's replicas are compared instead).
    #>
    param([Parameter(Mandatory)] $Cluster, [string] $Namespace = 'dev', [switch] $ExcludePods)
    $kinds = @('api/v1/services', 'apis/apps/v1/deployments', 'api/v1/configmaps') + @(if (-not $ExcludePods) { 'api/v1/pods' })
    $lines = foreach ($kind in $kinds) {
        $path = $kind -replace '/(\w+)$', "/namespaces/$Namespace/`$1"
        foreach ($o in (Invoke-Kube $Cluster "/$path").items) {
            $m = $o.metadata
            $spec = if ($o.PSObject.Properties['spec']) { $o.spec } else { $null }
            $shape = [ordered]@{
                kind        = $kind
                name        = $m.name
                labels      = if ($m.PSObject.Properties['labels']) { $m.labels } else { $null }
                annotations = if ($m.PSObject.Properties['annotations']) { $m.annotations } else { $null }
                selector    = if ($spec -and $spec.PSObject.Properties['selector']) { $spec.selector } else { $null }
                ports       = if ($spec -and $spec.PSObject.Properties['ports']) { $spec.ports } else { $null }
                replicas    = if ($spec -and $spec.PSObject.Properties['replicas']) { $spec.replicas } else { $null }
            }
            ConvertTo-Canonical $shape | ConvertTo-Json -Depth 10 -Compress
        }
    }
    ($lines | Sort-Object) -join "`n"
}

function Get-LaptopSnapshot {
    <# The laptop's routes, links and /etc/netns files (resolv.conf, hosts), to compare before and after. #>
    param([Parameter(Mandatory)] $Cluster)
    $routes = ip netns exec $Cluster.Laptop ip route show table all
    $links = ip netns exec $Cluster.Laptop ip -o link show
    $files = Get-ChildItem -File -LiteralPath "/etc/netns/$($Cluster.Laptop)" | Sort-Object Name |
        ForEach-Object { $_.Name + ':' + (Get-Content -Raw -LiteralPath $_.FullName) }
    (@($routes) + @($links) + @($files)) -join "`n"
}

function Get-PodNetNs {
    <# The network namespace of a pod, found by the pod IP the API reports. #>
    param([Parameter(Mandatory)] $Cluster, [string] $Namespace = 'dev', [Parameter(Mandatory)] [string] $App)
    $pod = (Invoke-Kube $Cluster "/api/v1/namespaces/$Namespace/pods?labelSelector=app%3D$App").items |
        Where-Object { $_.status.PSObject.Properties['podIP'] } | Select-Object -First 1
    $prefix = $Cluster.Laptop -replace '-l\d+$', '-p'
    foreach ($ns in (ip netns list) -replace '\s.*$', '' | Where-Object { $_.StartsWith($prefix) }) {
        if ((ip netns exec $ns ip -o -4 addr show) -match [regex]::Escape($pod.status.podIP) + '/') { return $ns }
    }
    throw "no network namespace has the IP of a pod app=$App"
}

function Invoke-ClusterCurl {
    <# A request from inside the cluster: curl in a pod's network namespace (its resolver is the cluster DNS). #>
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [string] $Url, [string] $App = 'client', [string[]] $Header = @())
    $ns = Get-PodNetNs -Cluster $Cluster -App $App
    $curlArgs = @('-sS', '--connect-timeout', '5', '--max-time', '15') + ($Header | ForEach-Object { '-H', $_ }) + $Url
    (ip netns exec $ns curl @curlArgs 2>&1) -join "`n"
}

function Wait-ClusterAnswer {
    <# Polls in-cluster requests until one answers with the expected text; returns the body. #>
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [string] $Url, [Parameter(Mandatory)] [string] $Expected,
        [string[]] $Header = @(), [int] $TimeoutSec = 30)
    $script:lastAnswer = ''
    try {
        Wait-Until -What "'$Expected' from $Url" -TimeoutSec $TimeoutSec {
            $script:lastAnswer = Invoke-ClusterCurl -Cluster $Cluster -Url $Url -Header $Header
            $script:lastAnswer -like "*$Expected*"
        } | Out-Null
    }
    catch { throw "$_ (last answer: $script:lastAnswer)" }
    $script:lastAnswer
}

function Start-LaptopPwsh {
    <#
    Starts `dotnet pwsh.dll` in the laptop namespace running $Script after the module is imported. The script's
    output goes to files; Wait-LaptopOutput waits for a line, Send-LaptopGo lets a script's Wait-Go return.
    Helpers the script has: Wait-Go (blocks until the test says go), $Module (the manifest path).
    #>
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [string] $Script, [switch] $Interactive, [switch] $NoImport)
    $dir = Join-Path $Cluster.State ('pwsh-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
    $null = New-Item -ItemType Directory -Path $dir
    $prelude = @'
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$PSStyle.OutputRendering = 'PlainText'
$Module = Join-Path $env:KTCONNECT_MODULE 'KtConnect.psd1'
function Wait-Go { while (-not (Test-Path -LiteralPath $env:KT_TEST_GO)) { Start-Sleep -Milliseconds 100 }; Remove-Item -LiteralPath $env:KT_TEST_GO }
'@
    if (-not $NoImport) { $prelude += "`nImport-Module `$Module`n" }
    $file = Join-Path $dir 'script.ps1'
    Set-Content -LiteralPath $file -Value ($prelude + "`n" + $Script) -Encoding utf8NoBOM
    $psi = [Diagnostics.ProcessStartInfo]::new('ip')
    $argv = @('netns', 'exec', $Cluster.Laptop, 'dotnet', $script:PwshDll, '-NoProfile')
    if (-not $Interactive) { $argv += '-NonInteractive' }
    $argv += @('-File', $file)
    foreach ($a in $argv) { $psi.ArgumentList.Add($a) }
    $psi.Environment['KUBECONFIG'] = $Cluster.Kubeconfig
    $psi.Environment['HOME'] = $Cluster.Home
    $psi.Environment['KT_TEST_GO'] = Join-Path $dir 'go'
    $psi.Environment['KTCONNECT_MODULE'] = $env:KTCONNECT_MODULE
    $psi.Environment['DOTNET_CLI_TELEMETRY_OPTOUT'] = '1'
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.RedirectStandardInput = $true
    $process = [Diagnostics.Process]::Start($psi)
    $out = [Collections.Concurrent.ConcurrentQueue[string]]::new()
    $err = [Collections.Concurrent.ConcurrentQueue[string]]::new()
    # Reader threads, not events: a PowerShell event handler would need this runspace to be idle to run.
    $reader = {
        param($stream, $queue)
        while ($null -ne ($line = $stream.ReadLine())) { $queue.Enqueue($line) }
    }
    $outPs = [powershell]::Create().AddScript($reader).AddArgument($process.StandardOutput).AddArgument($out)
    $errPs = [powershell]::Create().AddScript($reader).AddArgument($process.StandardError).AddArgument($err)
    [pscustomobject]@{
        Process = $process; Dir = $dir; Out = $out; Err = $err
        Readers = @($outPs, $errPs, $outPs.BeginInvoke(), $errPs.BeginInvoke())
    }
}

function Get-LaptopOutput {
    param([Parameter(Mandatory)] $Pwsh, [switch] $Error)
    (@(if ($Error) { $Pwsh.Err.ToArray() } else { $Pwsh.Out.ToArray() })) -join "`n"
}

function Wait-LaptopOutput {
    <# Waits until the laptop pwsh prints a line matching $Pattern (throws with its output if it exits first). #>
    param([Parameter(Mandatory)] $Pwsh, [Parameter(Mandatory)] [string] $Pattern, [int] $TimeoutSec = 120)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while (-not ($Pwsh.Out.ToArray() -match $Pattern)) {
        if ($Pwsh.Process.HasExited -and -not ($Pwsh.Out.ToArray() -match $Pattern)) {
            Start-Sleep -Milliseconds 300
            if (-not ($Pwsh.Out.ToArray() -match $Pattern)) {
                throw "pwsh exited ($($Pwsh.Process.ExitCode)) before printing '$Pattern':`n$(Get-LaptopOutput $Pwsh)`n$(Get-LaptopOutput $Pwsh -Error)"
            }
        }
        if ([DateTime]::UtcNow -gt $deadline) { throw "pwsh did not print '$Pattern' in $TimeoutSec s:`n$(Get-LaptopOutput $Pwsh)`n$(Get-LaptopOutput $Pwsh -Error)" }
        Start-Sleep -Milliseconds 200
    }
    ($Pwsh.Out.ToArray() -match $Pattern | Select-Object -First 1)
}

function Send-LaptopGo {
    param([Parameter(Mandatory)] $Pwsh)
    Set-Content -LiteralPath (Join-Path $Pwsh.Dir 'go') -Value 'go'
}

function Wait-LaptopExit {
    <# Waits for the laptop pwsh to exit; returns its exit code. #>
    param([Parameter(Mandatory)] $Pwsh, [int] $TimeoutSec = 120)
    if (-not $Pwsh.Process.WaitForExit($TimeoutSec * 1000)) {
        $Pwsh.Process.Kill($true)
        throw "pwsh did not exit in $TimeoutSec s:`n$(Get-LaptopOutput $Pwsh)`n$(Get-LaptopOutput $Pwsh -Error)"
    }
    # The readers end at end of stream; a process the script left running may hold the pipes, so wait only briefly.
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    while (-not ($Pwsh.Readers[2].IsCompleted -and $Pwsh.Readers[3].IsCompleted) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
    $Pwsh.Process.ExitCode
}

function Invoke-LaptopPwsh {
    <# Runs a script to completion in the laptop; returns exit code, output and error text. #>
    param([Parameter(Mandatory)] $Cluster, [Parameter(Mandatory)] [string] $Script, [int] $TimeoutSec = 180, [switch] $NoImport)
    $p = Start-LaptopPwsh -Cluster $Cluster -Script $Script -NoImport:$NoImport
    $p.Process.StandardInput.Close()
    $code = Wait-LaptopExit -Pwsh $p -TimeoutSec $TimeoutSec
    [pscustomobject]@{ ExitCode = $code; Output = (Get-LaptopOutput $p); Errors = (Get-LaptopOutput $p -Error) }
}

function Stop-LaptopPwsh {
    <# Kills a laptop pwsh that is still running (test cleanup). #>
    param($Pwsh)
    if ($Pwsh -and -not $Pwsh.Process.HasExited) { $Pwsh.Process.Kill($true); $Pwsh.Process.WaitForExit() }
}

Export-ModuleMember -Function *-*
